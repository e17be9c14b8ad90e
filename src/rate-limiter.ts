import type { Redis } from 'ioredis';
import { execChecked } from './redis.js';

export interface RateLimiterOptions {
  keyPrefix: string;
  /** Names the counted thing in the keys, e.g. `mutations`. */
  name: string;
  /** Hits allowed per subject per window. */
  limit: number;
  windowMs: number;
}

/**
 * A fixed-window counter in Redis, shared by every instance: a subject's window starts at its first
 * hit (one key that expires with it) rather than on the clock's minute, so a burst is measured from
 * where it begins and a window's end is the same on every instance. A burst straddling two windows
 * may pass up to twice the limit within one window's length; in exchange a hit costs one round trip.
 */
export function createRateLimiter(redis: Redis, options: RateLimiterOptions) {
  return {
    /** Counts a hit; resolves with 0 when it is allowed, else the milliseconds until the window ends. */
    async hit(subject: string): Promise<number> {
      const key = `${options.keyPrefix}limits:${options.name}:${subject}`;
      const [, count, remainingMs] = (await execChecked(
        redis.multi().set(key, 0, 'PX', options.windowMs, 'NX').incr(key).pttl(key),
      )) as [unknown, number, number];
      return count > options.limit ? Math.max(remainingMs, 1) : 0;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
