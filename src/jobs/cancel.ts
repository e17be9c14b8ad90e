import type { Redis } from 'ioredis';

/**
 * Cancellation that reaches a job in whatever worker process runs it: BullMQ's own cancel only
 * reaches jobs of the calling process. A flag (for a job that has not started yet) plus a
 * message on one channel (for a running one).
 */
function cancelKeys(keyPrefix: string) {
  return {
    channel: `${keyPrefix}cancel`,
    flag: (jobId: string) => `${keyPrefix}cancelled:{${jobId}}`,
  };
}

/** The API side: asks whichever worker runs the job to stop it. */
export async function requestCancel(redis: Redis, keyPrefix: string, jobId: string): Promise<void> {
  const keys = cancelKeys(keyPrefix);
  await redis.multi().set(keys.flag(jobId), '1', 'EX', 24 * 3600).publish(keys.channel, jobId).exec();
}

/** Marks why a job's signal fired, so the processor can tell cancel from timeout. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() {
    super('cancelled');
  }
}

/**
 * The worker side: one subscription for the whole process; each running job gets an AbortSignal
 * that fires when the job is cancelled from any API instance.
 */
export type CancelWatcher = Awaited<ReturnType<typeof createCancelWatcher>>;

export async function createCancelWatcher(redis: Redis, subscriber: Redis, keyPrefix: string) {
  const keys = cancelKeys(keyPrefix);
  const running = new Map<string, AbortController>();
  subscriber.on('message', (channel: string, jobId: string) => {
    if (channel === keys.channel) running.get(jobId)?.abort(new CancelledError());
  });
  await subscriber.subscribe(keys.channel);
  return {
    /** A signal for a job starting now; already aborted when the job was cancelled before it started. */
    async watch(jobId: string): Promise<{ signal: AbortSignal; release: () => void }> {
      const controller = new AbortController();
      running.set(jobId, controller);
      if (await redis.exists(keys.flag(jobId))) controller.abort(new CancelledError());
      return { signal: controller.signal, release: () => running.delete(jobId) };
    },
  };
}
