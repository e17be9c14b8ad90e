import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import type { ChannelListener, ResyncListener } from '../redis.js';
import { withTimeout } from '../timeouts.js';

/**
 * What the update streams fed by a hub hand their subscribers, for /metrics: plain counts and one
 * callback, so the updates layer needs no metrics library and a delivery costs an increment.
 */
export interface DeliveryMeter {
  /** Entries handed to a subscriber from a history read: an opening replay, a resume from a cursor, a catch-up. */
  replayed: number;
  /** Entries handed to a subscriber as pub/sub delivered them. */
  live: number;
  /** Subscriptions opened from a client's cursor: resumes after a reconnect. */
  resumed: number;
  /** Gap notices sent: updates after a subscriber's position were gone (trimmed, expired, or a new epoch). */
  gaps: number;
  /**
   * Called once per message a channel received, with the local listeners (subscriber streams) it
   * was handed to: the update's fan-out on this process, and the parsed message (an entry whose
   * traceparent a delivery span joins). Runs inside the delivery, so it must not throw.
   */
  fannedOut(listeners: number, message: unknown): void;
}

function unmetered(): DeliveryMeter {
  return { replayed: 0, live: 0, resumed: 0, gaps: 0, fannedOut: () => {} };
}

/** One Redis subscription, shared by every local listener of its channel. */
interface Channel {
  listeners: Set<ChannelListener>;
  /** Settles once Redis has confirmed the subscription. */
  confirmed: Promise<unknown>;
  /** Messages are held back from listeners: the connection that carried them was lost, history has them. */
  suspended: boolean;
  /** Cluster mode: the primary whose shard subscriber carries the channel (ioredis' node key). */
  node: string | undefined;
  /** Cluster mode: the channel's slot, computed once. */
  slot: number;
}

function parse(message: string): unknown {
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return message;
  }
}

/** Wait before confirming again the channels of a shard whose subscriber Redis has not taken back yet. */
const RECONFIRM_RETRY_MS = 250;

/** How long one confirmation may take before it is asked again. */
const RECONFIRM_WAIT_MS = 2_000;

/**
 * The process's one Redis subscriber: one Redis subscription per channel however many local
 * listeners it has, and what a lossless stream needs on top. subscribe() resolves only once Redis
 * has confirmed the subscription; when a connection that carried channels was lost, their messages
 * are held back from listeners (history has them, and a stream merged from several channels must
 * not see a later one before the resync fills the earlier) until Redis has confirmed them again,
 * and then their resync listeners are told to read what they missed.
 *
 * On one server or a Sentinel primary that is one connection (SUBSCRIBE; every channel is
 * affected by a reconnect). On a Redis Cluster each channel carries its stream's hash tag and is a
 * shard channel (SSUBSCRIBE, through ioredis' sharded subscribers: one connection per primary),
 * so a message costs its shard only; when a shard's subscriber connection is lost or its slots
 * move, only the streams of that shard's channels resync, as soon as the new primary confirms them.
 */
export function createUpdateHub(subscriber: Redis, meter: DeliveryMeter = unmetered()) {
  const cluster = subscriber.isCluster ? (subscriber as unknown as Cluster) : null;
  const channels = new Map<string, Channel>();
  /** Each resync listener and the channels it watches (null: all); a list, as most watch one or two. */
  const resyncListeners = new Map<ResyncListener, readonly string[] | null>();
  let down = false;
  let retryTimer: NodeJS.Timeout | null = null;

  const ownerOf = (channel: Channel) => cluster?.slots[channel.slot]?.[0];
  const send = (command: 'subscribe' | 'unsubscribe', channel: string): Promise<unknown> => {
    if (!cluster) return command === 'subscribe' ? subscriber.subscribe(channel) : subscriber.unsubscribe(channel);
    return command === 'subscribe' ? cluster.ssubscribe(channel) : cluster.sunsubscribe(channel);
  };

  subscriber.on(cluster ? 'smessage' : 'message', (name: string, message: string) => {
    const channel = channels.get(name);
    if (!channel || channel.suspended) return;
    const parsed = parse(message);
    meter.fannedOut(channel.listeners.size, parsed);
    for (const listener of channel.listeners) listener.onMessage(parsed);
  });

  function suspend(which: (channel: Channel) => boolean): void {
    for (const channel of channels.values()) if (which(channel)) channel.suspended = true;
  }

  /** Lets the channels' messages through again and tells their streams to read what they missed. */
  function resume(names: ReadonlySet<string>): void {
    for (const name of names) {
      const channel = channels.get(name);
      if (channel) channel.suspended = false;
    }
    for (const [listener, watched] of resyncListeners) {
      if (watched === null || watched.some((name) => names.has(name))) listener.onResync();
    }
  }

  if (!cluster) {
    let wasReady = subscriber.status === 'ready';
    subscriber.on('close', () => {
      if (!wasReady) return;
      down = true;
      suspend(() => true);
    });
    subscriber.on('ready', () => {
      if (!wasReady) {
        wasReady = true;
        return;
      }
      // ioredis re-sends SUBSCRIBE for every channel before 'ready'; a PING queued behind them
      // answers only once Redis has applied them, so nothing published after this is missed.
      subscriber
        .ping()
        .then(() => {
          down = false;
          resume(new Set(channels.keys()));
        })
        .catch(() => undefined);
    });
  } else {
    // A shard subscriber's connection ended: ioredis names its primary, and the slot map still
    // says which channels it carried. Every connection lost: every channel.
    cluster.on('-node', (_redis: unknown, node?: string) => {
      if (typeof node === 'string') suspend((channel) => channel.node === node);
    });
    cluster.on('close', () => suspend(() => true));
    // After every slot map refresh too: ioredis may announce its subscribers ready before the map
    // shows a promoted replica, and a frozen primary closes nothing that would announce it again.
    cluster.on('subscribersReady', () => void reconfirm());
    cluster.on('refresh', () => void reconfirm());
  }

  /**
   * ioredis re-sends SSUBSCRIBE to each shard's new subscriber without reporting when it is
   * applied; asking again (Redis ignores a repeated subscription) answers once it is, on that very
   * connection. Channels whose slot moved to another primary are affected too.
   */
  async function reconfirm(): Promise<void> {
    if (subscriber.status === 'end') return;
    // Runs after every slot refresh: one pass over the channels, copying only the affected ones.
    const affected: Array<[string, Channel]> = [];
    for (const entry of channels) {
      const channel = entry[1];
      if (ownerOf(channel) !== channel.node) channel.suspended = true;
      if (channel.suspended) affected.push(entry);
    }
    if (affected.length === 0) return;
    const results = await Promise.allSettled(
      affected.map(async ([name, channel]) => {
        // A frozen primary's subscriber would hold the request for good: give up and try again.
        if (
          !(await withTimeout(
            send('subscribe', name).then(() => true),
            RECONFIRM_WAIT_MS,
            false,
          ))
        ) {
          throw new Error(`no confirmation of ${name}`);
        }
        channel.node = ownerOf(channel);
        return name;
      }),
    );
    const confirmed = new Set(results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : [])));
    resume(confirmed);
    if (confirmed.size < affected.length && !retryTimer) {
      retryTimer = setTimeout(() => {
        retryTimer = null;
        void reconfirm();
      }, RECONFIRM_RETRY_MS).unref();
    }
  }

  return {
    /** Where the streams this hub feeds count what they deliver. */
    meter,

    /** Resolves once Redis delivers the channel's messages to `listener`. */
    async subscribe(name: string, listener: ChannelListener): Promise<void> {
      let channel = channels.get(name);
      if (!channel) {
        const created: Channel = {
          listeners: new Set(),
          confirmed: send('subscribe', name),
          suspended: down,
          node: undefined,
          slot: cluster ? calculateSlot(name) : 0,
        };
        created.confirmed.then(
          () => (created.node = ownerOf(created)),
          () => undefined,
        );
        channels.set(name, (channel = created));
      }
      channel.listeners.add(listener);
      try {
        await channel.confirmed;
      } catch (error) {
        channel.listeners.delete(listener);
        if (channels.get(name) === channel && channel.listeners.size === 0) channels.delete(name);
        throw error;
      }
    },

    /** Stops handing the channel's messages to `listener`; the last listener's leaving unsubscribes in Redis. */
    unsubscribe(name: string, listener: ChannelListener): void {
      const channel = channels.get(name);
      if (!channel?.listeners.delete(listener) || channel.listeners.size > 0) return;
      channels.delete(name);
      send('unsubscribe', name).catch(() => undefined);
    },

    /**
     * Tells `listener` when the subscriber reconnected (read what you may have missed); with
     * `watched`, only when one of those channels was affected.
     */
    onResync(listener: ResyncListener, watched?: readonly string[]): void {
      resyncListeners.set(listener, watched ?? null);
    },

    offResync(listener: ResyncListener): void {
      resyncListeners.delete(listener);
    },
  };
}

export type UpdateHub = ReturnType<typeof createUpdateHub>;
