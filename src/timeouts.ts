import { setTimeout as delay } from 'node:timers/promises';

/**
 * What `promise` settles with, or `fallback` once `ms` have passed without it: for a call to Redis
 * that must not hold up a probe, a shutdown or a connection while Redis is away. The timer is
 * cleared as soon as either settles and never keeps the process alive.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([promise, delay(ms, fallback, { signal: timer.signal, ref: false })]);
  } finally {
    timer.abort();
  }
}
