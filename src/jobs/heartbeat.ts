import type { Redis } from 'ioredis';

/** A running job's heartbeat: a key that lives JOB_HEARTBEAT_TIMEOUT_MS unless its worker refreshes it. */
function heartbeatKey(keyPrefix: string, jobId: string): string {
  return `${keyPrefix}heartbeat:{${jobId}}`;
}

/**
 * The worker side: while an attempt runs, its worker's main thread (the event loop that also
 * renews BullMQ's lock) sets the job's heartbeat key to expire after `timeoutMs`, and again every
 * third of it. A worker that dies, is frozen or whose event loop hangs stops refreshing it, and
 * the key is gone at most `timeoutMs` after its last sign of life. A write that fails (Redis away)
 * is reported to `onError`; the next one tries again. `stop` leaves the key to expire, so a job
 * that BullMQ has not yet moved out of active never reads as having none.
 */
export function startHeartbeat(
  redis: Redis,
  keyPrefix: string,
  jobId: string,
  timeoutMs: number,
  onError: (error: Error) => void,
): { stop(): void } {
  const beat = () => void redis.set(heartbeatKey(keyPrefix, jobId), '1', 'PX', timeoutMs).catch(onError);
  beat();
  const timer = setInterval(beat, Math.max(1, Math.floor(timeoutMs / 3)));
  return { stop: () => clearInterval(timer) };
}

/** The API side: which of these running jobs still have a heartbeat, in their order. */
export async function hasHeartbeat(redis: Redis, keyPrefix: string, jobIds: readonly string[]): Promise<boolean[]> {
  const counts = await Promise.all(jobIds.map((id) => redis.exists(heartbeatKey(keyPrefix, id))));
  return counts.map((count) => count === 1);
}
