import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/** A key prefix no other test uses, so test files can share one Redis. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString('hex')}:`;
}

export function redisUrl(): string {
  return inject('redisUrl');
}

export function connect(url = redisUrl()): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}
