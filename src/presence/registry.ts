import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScript, execChecked, readScript } from '../redis.js';
import { withTimeout } from '../timeouts.js';

const ADMIT_SCRIPT = readScript(new URL('./admit.lua', import.meta.url));

/** State an instance keeps in Redis beside its connection counts, kept alive and cleaned up by the same heartbeat. */
export interface InstanceState {
  /** Writes this instance's state again (at start, and after Redis lost it). */
  announce(): Promise<void>;
  /** Removes a gone instance's state, or this instance's own when it stops; idempotent. */
  forget(instanceId: string): Promise<void>;
}

export interface PresenceOptions {
  keyPrefix: string;
  /** How often the instance rewrites its entry and refreshes its TTL. */
  heartbeatMs: number;
  /** Lifetime of the entry: an instance that stops heartbeating (crash, SIGKILL) is gone after it. */
  ttlMs: number;
  /** Default: a random UUID per process. */
  instanceId?: string;
  /** Told when Redis refused a write; the next heartbeat rewrites everything anyway. */
  onError?: (error: Error) => void;
  /** Further per-instance state (who watches which room): announced with the counts, forgotten with them. */
  states?: InstanceState[];
}

/** A connected user and their open connections, summed over every live API instance. */
export interface OnlineUser {
  id: string;
  connections: number;
}

/**
 * Who is connected, across API instances, with no key that every connection writes:
 * - each user has a hash of their connection count per instance, in the user's own slot, which
 *   the admit script checks and writes atomically (the cap);
 * - each instance has a hash of its users' counts (what `onlineUsers` sums) and an `alive` key
 *   whose TTL its heartbeat refreshes, both in the instance's own slot;
 * - a set indexes the instances; only starts, heartbeats that heal and clean-ups write it.
 * An instance that stops heartbeating (crash, SIGKILL) loses its `alive` key after the TTL; the next
 * live instance to heartbeat then removes its counts from its users' hashes. Redis's clock decides
 * expiry, not the instances'. Connect and disconnect write two keys (the user's and the
 * instance's), each one its own step: a Cluster has no atomic step across slots, and only the
 * cap needs one.
 */
export function createPresenceRegistry(redis: Redis, options: PresenceOptions) {
  const admitScript = defineScript<number>(redis, 'heraldPresenceAdmit', ADMIT_SCRIPT);
  const instanceId = options.instanceId ?? randomUUID();
  const base = `${options.keyPrefix}presence:`;
  const indexKey = `${base}{presence}:instances`;
  const aliveKey = (id: string) => `${base}{instance:${id}}:alive`;
  const usersKey = (id: string) => `${base}{instance:${id}}:users`;
  const userKey = (userId: string) => `${base}{user:${userId}}`;
  const local = new Map<string, number>();
  const states = options.states ?? [];
  let timer: NodeJS.Timeout | null = null;

  function report(promise: Promise<unknown>): void {
    promise.catch((error: Error) => options.onError?.(error));
  }

  /** Writes every count of this instance again: at start, and after Redis lost them (a restart, or an instance thought dead). */
  async function announce(): Promise<void> {
    const tx = redis.multi().set(aliveKey(instanceId), '1', 'PX', options.ttlMs).del(usersKey(instanceId));
    if (local.size > 0) tx.hset(usersKey(instanceId), Object.fromEntries(local));
    await Promise.all([
      execChecked(tx),
      redis.sadd(indexKey, instanceId),
      ...[...local].map(([userId, count]) => redis.hset(userKey(userId), instanceId, count)),
      ...states.map((state) => state.announce()),
    ]);
  }

  /** Removes a gone instance's counts; several instances may do it at once, each step being idempotent. */
  async function forget(id: string): Promise<void> {
    const users = Object.keys(await redis.hgetall(usersKey(id)));
    await Promise.all([...users.map((userId) => redis.hdel(userKey(userId), id)), ...states.map((state) => state.forget(id))]);
    await redis.del(usersKey(id));
    await redis.srem(indexKey, id);
  }

  /** Instances of the index whose `alive` key is gone. */
  async function goneInstances(ids: string[]): Promise<Set<string>> {
    const alive = await Promise.all(ids.map((id) => redis.exists(aliveKey(id))));
    return new Set(ids.filter((_, i) => alive[i] === 0));
  }

  /** Refreshes this instance's TTL (announcing everything again if Redis lost it) and forgets gone instances. */
  async function heartbeat(): Promise<void> {
    if ((await redis.pexpire(aliveKey(instanceId), options.ttlMs)) === 0) await announce();
    const gone = await goneInstances(await redis.smembers(indexKey));
    gone.delete(instanceId);
    await Promise.all([...gone].map(forget));
  }

  /** Applies one user's new count to the user's and the instance's hash; commands on one connection run in the order sent. */
  function change(userId: string, delta: number): void {
    const count = (local.get(userId) ?? 0) + delta;
    if (count > 0) {
      local.set(userId, count);
      report(Promise.all([redis.hset(userKey(userId), instanceId, count), redis.hset(usersKey(instanceId), userId, count)]));
    } else {
      local.delete(userId);
      report(Promise.all([redis.hdel(userKey(userId), instanceId), redis.hdel(usersKey(instanceId), userId)]));
    }
  }

  return {
    instanceId,

    /** Starts heartbeating, at once and then every heartbeatMs; never waits for Redis, which may be down. */
    start(): void {
      if (timer) return;
      timer = setInterval(() => report(heartbeat()), options.heartbeatMs);
      timer.unref();
      report(announce());
    },

    /**
     * Stops heartbeating and removes this instance's counts, waiting at most `waitMs` (default 1 s)
     * for Redis: when it is down, the next live instance removes them once the TTL has passed.
     */
    async stop(waitMs = 1_000): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      local.clear();
      const removed = redis
        .del(aliveKey(instanceId))
        .then(() => forget(instanceId))
        .catch(() => undefined);
      await withTimeout(removed, waitMs, undefined);
    },

    /**
     * Counts a new connection of `userId` unless the user already has `max` over every live
     * instance; then it resolves false and counts nothing. When Redis does not answer within
     * `waitMs` (default 1 s) the connection is let in: a cap is not worth refusing everyone while
     * Redis is away, and the instance's hash is written anyway.
     */
    async admit(userId: string, max: number, waitMs = 1_000): Promise<boolean> {
      const count = (local.get(userId) ?? 0) + 1;
      local.set(userId, count);
      const admitted = admitScript(1, userKey(userId), instanceId, String(count), String(max)).then(
        (result) => result === 1,
        (error: Error) => {
          options.onError?.(error);
          return true;
        },
      );
      const outcome = await withTimeout(admitted, waitMs, true);
      if (outcome) report(redis.hset(usersKey(instanceId), userId, local.get(userId) ?? 0));
      else change(userId, -1);
      return outcome;
    },

    disconnected(userId: string): void {
      change(userId, -1);
    },

    /** Every user connected to a live instance, with their connections summed, sorted by id. */
    async onlineUsers(): Promise<OnlineUser[]> {
      const ids = await redis.smembers(indexKey);
      const gone = await goneInstances(ids);
      const live = ids.filter((id) => !gone.has(id));
      const counts = await Promise.all(live.map((id) => redis.hgetall(usersKey(id))));
      const totals = new Map<string, number>();
      for (const perUser of counts) {
        for (const [userId, count] of Object.entries(perUser)) totals.set(userId, (totals.get(userId) ?? 0) + Number(count));
      }
      return [...totals]
        .filter(([, connections]) => connections > 0)
        .map(([id, connections]) => ({ id, connections }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
  };
}

export type PresenceRegistry = ReturnType<typeof createPresenceRegistry>;
