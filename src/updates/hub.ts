import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';

/** Called with each message of a channel, parsed once per process however many listen. */
export type Listener = (message: unknown) => void;

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
   * Called once per live entry per process, right after its first subscriber was handed it (on a
   * WebSocket, its frame given to the socket), with the time its producer appended it (ms since the epoch;
   * NaN when its timestamp does not parse). Runs inside the delivery, so it must not throw.
   */
  firstLiveDelivery(appendedAtMs: number): void;
}

function unmetered(): DeliveryMeter {
  return { replayed: 0, live: 0, resumed: 0, gaps: 0, firstLiveDelivery: () => {} };
}

/**
 * The process's one Redis subscriber. graphql-redis-subscriptions keeps one Redis subscription
 * per channel however many local listeners it has; this adds what a lossless stream needs on top:
 * subscribe() resolves only once Redis has confirmed the subscription, and resync listeners are
 * told when the connection came back, after ioredis has re-subscribed every channel. Between a
 * lost connection and that resync, messages are held back from listeners: history has them, and a
 * stream merged from several channels must not see a later one before the resync fills the earlier.
 */
export function createUpdateHub(subscriber: Redis, meter: DeliveryMeter = unmetered()) {
  // The hub never publishes; RedisPubSub opens connections of its own unless it is given both.
  const pubsub = new RedisPubSub({ publisher: subscriber, subscriber });
  const resyncListeners = new Set<() => void>();
  let wasReady = subscriber.status === 'ready';
  let suspended = false;

  subscriber.on('close', () => {
    suspended = wasReady;
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
        suspended = false;
        for (const listener of resyncListeners) listener();
      })
      .catch(() => undefined);
  });

  return {
    /** Where the streams this hub feeds count what they deliver. */
    meter,

    /** Resolves once Redis delivers the channel's messages to `listener`; call the result to stop. */
    async subscribe(channel: string, listener: Listener): Promise<() => void> {
      const id = await pubsub.subscribe(channel, (message: unknown) => {
        if (!suspended) listener(message);
      });
      let active = true;
      return () => {
        if (!active) return;
        active = false;
        pubsub.unsubscribe(id);
      };
    },

    /** Registers a listener for "the subscriber reconnected: read what you may have missed". */
    onResync(listener: () => void): () => void {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
  };
}

export type UpdateHub = ReturnType<typeof createUpdateHub>;
