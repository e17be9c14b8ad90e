import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScript, execChecked, readScript } from '../redis.js';
import { withTimeout } from '../timeouts.js';

const ADMIT_SCRIPT = readScript(new URL('./admit.lua', import.meta.url));

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
}

/** A connected user and their open connections, summed over every live API instance. */
export interface OnlineUser {
  id: string;
  connections: number;
}

/**
 * Who is connected, across API instances. Each instance keeps a hash of its users' connection
 * counts under a key with a TTL that its heartbeat refreshes, so a crashed instance's entry
 * expires on its own instead of leaking; the set of instance ids is only an index, pruned by
 * readers when an instance's key is gone (a live one re-adds itself at its next write or
 * heartbeat). Redis's clock decides expiry, not the instances'.
 */
export function createPresenceRegistry(redis: Redis, options: PresenceOptions) {
  const admitScript = defineScript<number>(redis, 'heraldPresenceAdmit', ADMIT_SCRIPT);
  const instanceId = options.instanceId ?? randomUUID();
  const base = `${options.keyPrefix}presence:{presence}:`;
  const indexKey = `${base}instances`;
  const instanceKey = (id: string) => `${base}instance:${id}`;
  const key = instanceKey(instanceId);
  const local = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;

  function report(promise: Promise<unknown>): void {
    promise.catch((error: Error) => options.onError?.(error));
  }

  /** Rewrites the whole entry: heals it after Redis lost it or a write failed. */
  function heartbeat(): Promise<unknown> {
    const tx = redis.multi().del(key);
    if (local.size > 0) tx.hset(key, Object.fromEntries(local));
    return execChecked(tx.pexpire(key, options.ttlMs).sadd(indexKey, instanceId));
  }

  /** Applies one user's new count; commands on one connection run in the order they were sent. */
  function change(userId: string, delta: number): void {
    const count = (local.get(userId) ?? 0) + delta;
    const tx = redis.multi();
    if (count > 0) {
      local.set(userId, count);
      tx.hset(key, userId, count);
    } else {
      local.delete(userId);
      tx.hdel(key, userId);
    }
    report(execChecked(tx.pexpire(key, options.ttlMs).sadd(indexKey, instanceId)));
  }

  return {
    instanceId,

    /** Starts heartbeating, at once and then every heartbeatMs; never waits for Redis, which may be down. */
    start(): void {
      if (timer) return;
      timer = setInterval(() => report(heartbeat()), options.heartbeatMs);
      timer.unref();
      report(heartbeat());
    },

    /**
     * Stops heartbeating and removes this instance's entry, waiting at most `waitMs` (default 1 s)
     * for Redis: when it is down, the entry's TTL removes it anyway.
     */
    async stop(waitMs = 1_000): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      local.clear();
      const removed = execChecked(redis.multi().del(key).srem(indexKey, instanceId)).catch(() => undefined);
      await withTimeout(removed, waitMs, undefined);
    },

    /**
     * Counts a new connection of `userId` unless the user already has `max` over every live
     * instance; then it resolves false and counts nothing. When Redis does not answer within
     * `waitMs` (default 1 s) the connection is let in: a cap is not worth refusing everyone while
     * Redis is away, and the next heartbeat writes the count anyway.
     */
    async admit(userId: string, max: number, waitMs = 1_000): Promise<boolean> {
      const count = (local.get(userId) ?? 0) + 1;
      local.set(userId, count);
      const admitted = admitScript(
        2,
        indexKey,
        key,
        instanceId,
        userId,
        String(count),
        String(max),
        String(options.ttlMs),
        instanceKey(''),
      ).then(
        (result) => result === 1,
        (error: Error) => {
          options.onError?.(error);
          return true;
        },
      );
      const outcome = await withTimeout(admitted, waitMs, true);
      if (!outcome) change(userId, -1);
      return outcome;
    },

    disconnected(userId: string): void {
      change(userId, -1);
    },

    /** Every user connected to a live instance, with their connections summed, sorted by id. */
    async onlineUsers(): Promise<OnlineUser[]> {
      const ids = await redis.smembers(indexKey);
      if (ids.length === 0) return [];
      const tx = redis.multi();
      for (const id of ids) tx.hgetall(instanceKey(id));
      const results = (await execChecked(tx)) as Array<Record<string, string>>;
      const totals = new Map<string, number>();
      const gone: string[] = [];
      results.forEach((counts, i) => {
        if (Object.keys(counts).length === 0) gone.push(ids[i]!);
        for (const [userId, count] of Object.entries(counts)) totals.set(userId, (totals.get(userId) ?? 0) + Number(count));
      });
      if (gone.length > 0) await redis.srem(indexKey, ...gone);
      return [...totals]
        .map(([id, connections]) => ({ id, connections }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
  };
}

export type PresenceRegistry = ReturnType<typeof createPresenceRegistry>;
