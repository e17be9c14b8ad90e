import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/** A key prefix no other test uses, so test files can share one Redis. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString('hex')}:`;
}

let providedRedisUrl: string | undefined;

/** Names the Redis test code shares when it runs without vitest's globalSetup (`npm run faults`). */
export function provideRedisUrl(url: string): void {
  providedRedisUrl = url;
}

/** The Redis test code shares: vitest's globalSetup provides it, or a runner without one via provideRedisUrl. */
export function redisUrl(): string {
  return providedRedisUrl ?? inject('redisUrl');
}

export function connect(url = redisUrl()): Redis {
  // disableClientInfo: see roleOptions in src/redis.ts (redis/ioredis#2037).
  return new Redis(url, { maxRetriesPerRequest: null, disableClientInfo: true });
}
