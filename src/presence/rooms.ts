import type { Redis } from 'ioredis';
import { defineScript, execChecked, publishCommand, readScript } from '../redis.js';
import { MappedStream, type EventStream } from '../updates/event-stream.js';

const ROOM_SCRIPT = readScript(new URL('./room.lua', import.meta.url));

/** How long a room's change counter outlives its last join or leave: long enough that no subscriber mistakes a fresh counter for an old one. */
const VERSION_TTL_MS = 24 * 3_600_000;

/**
 * What an instance writes to Redis for a user it counts in a room, however many of the user's
 * subscriptions it holds there: whether the user is there is all a room needs, and the exact
 * count stays in the instance, which spares Redis a write per further subscription.
 */
const WATCHING = 1;

/** Separates an instance, or a room, from a user in hash fields: no id may contain it (see ID_CHARACTERS). */
const SEPARATOR = '/';

/** Where people can be present: a project, or one resource (a file or a query). */
export type Room = { kind: 'project'; id: string } | { kind: 'resource'; id: string };

/** Someone present in a room, since they opened their first subscription to it (ms since the epoch). */
export interface Watcher {
  id: string;
  since: number;
}

/** A room's watchers and the number of its last change, read in one step. */
export interface RoomSnapshot {
  version: number;
  watchers: Watcher[];
}

/** What the room's channel carries for each join and leave (see room.lua). */
export interface RoomChange {
  version: number;
  change: 'JOINED' | 'LEFT';
  userId: string;
  /** When the user joined (for a leave, when the user had joined). */
  since: number;
  at: number;
}

export function isRoomChange(message: unknown): message is RoomChange {
  const value = message as Partial<RoomChange> | null;
  return (
    typeof value?.version === 'number' &&
    (value.change === 'JOINED' || value.change === 'LEFT') &&
    typeof value.userId === 'string' &&
    typeof value.since === 'number' &&
    typeof value.at === 'number'
  );
}

export interface RoomPresenceOptions {
  keyPrefix: string;
  /** The instance whose subscriptions this counts: the presence registry's, whose heartbeat keeps them alive. */
  instanceId: string;
  /** Told when Redis refused a write; the next re-announce rewrites everything anyway. */
  onError?: (error: Error) => void;
}

const nameOf = (room: Room) => `${room.kind}:${room.id}`;

/** "room/user" -> [room, user]: rooms and users have no separator in them, so the first one splits. */
function split(field: string): [room: string, userId: string] {
  const at = field.indexOf(SEPARATOR);
  return [field.slice(0, at), field.slice(at + 1)];
}

/** Oldest first, then by id: the order every list of watchers is given in. */
export function byArrival(a: Watcher, b: Watcher): number {
  return a.since - b.since || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Who is watching which project and resource, across API instances. A room's state lives in its
 * own slot (hash tag `{room:project:ID}` or `{room:resource:ID}`): which instances count each user
 * (WATCHING), each user's total over them and when they joined, and a change counter; room.lua
 * changes them in one step and publishes joins and leaves on the room's channel. Each instance
 * also keeps, in its own slot, which rooms and users it counts, so that when it dies (its presence
 * registry entry expires) another instance removes its counts and the room hears its users leave.
 */
export function createRoomPresence(redis: Redis, options: RoomPresenceOptions) {
  const roomScript = defineScript<number>(redis, 'heraldPresenceRoom', ROOM_SCRIPT);
  const base = `${options.keyPrefix}presence:`;
  const roomKey = (room: string, part: string) => `${base}{room:${room}}:${part}`;
  const watchingKey = (instanceId: string) => `${base}{instance:${instanceId}}:watching`;
  const publish = publishCommand(redis);
  /** This instance's open subscriptions, per room and user: "room/user" -> count (Redis has WATCHING for each). */
  const local = new Map<string, number>();

  function report(promise: Promise<unknown>): void {
    promise.catch((error: Error) => options.onError?.(error));
  }

  /** Sets `instanceId`'s count of `userId` in `room`: WATCHING, or 0 once the user has no subscription there. */
  function setCount(instanceId: string, room: string, userId: string, count: number): Promise<number> {
    const keys = ['entries', 'totals', 'since', 'version'].map((part) => roomKey(room, part));
    const args = [
      `${instanceId}${SEPARATOR}${userId}`,
      userId,
      String(count),
      publish,
      roomKey(room, 'changes'),
      String(VERSION_TTL_MS),
    ];
    return roomScript(keys.length, ...keys, ...args);
  }

  /**
   * Counts one more or one fewer of `userId`'s subscriptions to `room` here; Redis hears of it only
   * when the user's first one opens or the last one closes, so a user's further tabs on the same
   * file cost Redis nothing.
   */
  function change(room: string, userId: string, delta: number): void {
    const field = `${room}${SEPARATOR}${userId}`;
    const before = local.get(field) ?? 0;
    const count = Math.max(0, before + delta);
    if (count > 0) local.set(field, count);
    else local.delete(field);
    if (before > 0 === count > 0) return;
    const key = watchingKey(options.instanceId);
    const own = count > 0 ? redis.hset(key, field, WATCHING) : redis.hdel(key, field);
    report(Promise.all([setCount(options.instanceId, room, userId, count > 0 ? WATCHING : 0), own]));
  }

  /**
   * Counts `userId` as watching `rooms` until the returned function is called (once; later calls
   * do nothing). Redis is written in the background: commands on one connection run in the order sent.
   */
  function watch(rooms: Room[], userId: string): () => void {
    const names = rooms.map(nameOf);
    for (const room of names) change(room, userId, 1);
    let watching = true;
    return () => {
      if (!watching) return;
      watching = false;
      for (const room of names) change(room, userId, -1);
    };
  }

  return {
    /** The channel a room's joins and leaves are published on (a shard channel in its slot on a Cluster). */
    channel: (room: Room) => roomKey(nameOf(room), 'changes'),

    /** `stream`, counting `userId` as watching `rooms` from now until it ends, however it ends. */
    watching<V>(stream: EventStream<V>, rooms: Room[], userId: string): EventStream<V> {
      return new WatchingStream(stream, watch(rooms, userId));
    },

    /** Who is in `room` now, oldest first, with the number of its last change. */
    async snapshot(room: Room): Promise<RoomSnapshot> {
      const name = nameOf(room);
      const [since, version] = (await execChecked(
        redis.multi().hgetall(roomKey(name, 'since')).get(roomKey(name, 'version')),
      )) as [Record<string, string>, string | null];
      const watchers = Object.entries(since).map(([id, at]) => ({ id, since: Number(at) }));
      return { version: Number(version ?? 0), watchers: watchers.sort(byArrival) };
    },

    /** Writes every count of this instance again: after Redis lost them, or another instance took it for dead. */
    async announce(): Promise<void> {
      const key = watchingKey(options.instanceId);
      const fields = [...local.keys()];
      const tx = redis.multi().del(key);
      if (fields.length > 0) tx.hset(key, Object.fromEntries(fields.map((field) => [field, WATCHING])));
      const writes = fields.map((field) => setCount(options.instanceId, ...split(field), WATCHING));
      await Promise.all([execChecked(tx), ...writes]);
    },

    /**
     * Removes a gone instance's counts, so its users leave the rooms they watched through it;
     * idempotent. For this instance itself (it stops), its subscriptions ending later write nothing.
     */
    async forget(instanceId: string): Promise<void> {
      if (instanceId === options.instanceId) local.clear();
      const fields = Object.keys(await redis.hgetall(watchingKey(instanceId)));
      await Promise.all(fields.map((field) => setCount(instanceId, ...split(field), 0)));
      await redis.del(watchingKey(instanceId));
    },
  };
}

export type RoomPresence = ReturnType<typeof createRoomPresence>;

/** A subscription's stream that counts its viewer as watching while it is open. */
class WatchingStream<V> extends MappedStream<V, V> {
  constructor(
    source: EventStream<V>,
    private readonly unwatch: () => void,
  ) {
    super(source);
  }

  map(event: V): V {
    return event;
  }

  protected override onEnd(): void {
    this.unwatch();
  }
}
