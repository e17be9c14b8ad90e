import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';

/** An HTTP answer as it is kept for the retries of its request. */
export interface StoredAnswer {
  status: number;
  body: unknown;
}

/** What a request with an Idempotency-Key gets: its answer (the first one, `replayed`, for a retry), or why not. */
export type IdempotentOutcome =
  | { kind: 'answer'; answer: StoredAnswer; replayed: boolean }
  /** The key was used before for a different request (another path or body). */
  | { kind: 'mismatch' }
  /** The first request with the key is still running after `pendingMs`. */
  | { kind: 'in-progress' };

export interface IdempotencyOptions {
  keyPrefix: string;
  /** How long a first answer is kept for retries. */
  ttlSeconds: number;
  /** How long a running request holds its key (and a retry waits for it); a crashed request frees it after this. */
  pendingMs: number;
}

interface Entry {
  fingerprint: string;
  answer?: StoredAnswer;
}

const POLL_MS = 25;

/** The SHA-256 of `parts`, hex: what is kept of an Idempotency-Key and of the request it came with. */
export function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('hex');
}

/**
 * `Idempotency-Key` for HTTP requests, shared by every instance through Redis. The first request
 * with a key claims it (SET NX, for `pendingMs`) and runs; its answer is kept for `ttlSeconds`
 * (a server error is not: the key is freed, so a retry runs again). A retry gets the kept answer;
 * one that arrives while the first still runs waits for it. A retry after the claim has lapsed
 * (the first request's instance died mid-way) runs again, which is why what it runs must be
 * idempotent itself: appends carry an append id derived from the key (see append.lua).
 */
export function createIdempotencyStore(redis: Redis, options: IdempotencyOptions) {
  return {
    /**
     * Runs `answer` at most once for (`scope`, `key`) while its first answer is kept. `fingerprint`
     * names the request, so the same key sent with another request is refused instead of replayed.
     */
    async run(scope: string, key: string, fingerprint: string, answer: () => Promise<StoredAnswer>): Promise<IdempotentOutcome> {
      const redisKey = `${options.keyPrefix}idempotency:{${scope}}:${digest(key)}`;
      const deadline = Date.now() + options.pendingMs;
      for (;;) {
        const claimed = await redis.set(redisKey, JSON.stringify({ fingerprint } satisfies Entry), 'PX', options.pendingMs, 'NX');
        if (claimed === 'OK') {
          let result: StoredAnswer;
          try {
            result = await answer();
          } catch (error) {
            await redis.del(redisKey);
            throw error;
          }
          if (result.status >= 500) await redis.del(redisKey);
          else
            await redis.set(redisKey, JSON.stringify({ fingerprint, answer: result } satisfies Entry), 'EX', options.ttlSeconds);
          return { kind: 'answer', answer: result, replayed: false };
        }
        const stored = await redis.get(redisKey);
        if (stored === null) continue;
        const entry = JSON.parse(stored) as Entry;
        if (entry.fingerprint !== fingerprint) return { kind: 'mismatch' };
        if (entry.answer) return { kind: 'answer', answer: entry.answer, replayed: true };
        if (Date.now() >= deadline) return { kind: 'in-progress' };
        await sleep(POLL_MS);
      }
    },
  };
}

export type IdempotencyStore = ReturnType<typeof createIdempotencyStore>;
