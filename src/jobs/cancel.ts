import type { Redis } from 'ioredis';
import { publish, type ChannelListener, type ChannelSubscriber, type ResyncListener } from '../redis.js';

/**
 * Cancellation that reaches a job in whatever worker process runs it: BullMQ's own cancel only
 * reaches jobs of the calling process. A flag is the request itself (read when a job starts, and
 * again after the worker's subscriber reconnects); a message on one channel is the fast path that
 * stops a running job at once.
 */
function cancelKeys(keyPrefix: string) {
  return {
    channel: `${keyPrefix}cancel`,
    flag: (jobId: string) => `${keyPrefix}cancelled:{${jobId}}`,
  };
}

/**
 * The API side: asks whichever worker runs the job to stop it. The flag first, then the message:
 * two commands, as the flag's slot is the job's and on a Redis Cluster the channel is a shard
 * channel of its own slot; a failure after the flag leaves the request standing, and the caller
 * that sees the error may ask again.
 */
export async function requestCancel(redis: Redis, keyPrefix: string, jobId: string): Promise<void> {
  const keys = cancelKeys(keyPrefix);
  await redis.set(keys.flag(jobId), '1', 'EX', 24 * 3600);
  await publish(redis, keys.channel, jobId);
}

/** Withdraws a job's cancel request, so a cancelled job retried on request can run. */
export async function withdrawCancel(redis: Redis, keyPrefix: string, jobId: string): Promise<void> {
  await redis.del(cancelKeys(keyPrefix).flag(jobId));
}

/**
 * The worker side: one subscription for the whole process; each running job gets an AbortSignal
 * that fires when the job is cancelled from any API instance, even while the subscriber was
 * disconnected (the flags are read again once it is back).
 */
export type CancelWatcher = Awaited<ReturnType<typeof createCancelWatcher>>;

export async function createCancelWatcher(
  redis: Redis,
  subscriber: ChannelSubscriber,
  keyPrefix: string,
  onError: (error: Error) => void,
) {
  const keys = cancelKeys(keyPrefix);
  const running = new Map<string, AbortController>();

  async function readFlags(jobIds: string[]): Promise<void> {
    const flags = await Promise.all(jobIds.map((jobId) => redis.exists(keys.flag(jobId))));
    for (const [i, jobId] of jobIds.entries()) if (flags[i]) running.get(jobId)?.abort();
  }

  const listener: ChannelListener & ResyncListener = {
    // The message is the bare job id, as earlier versions sent it; the hub hands it on unparsed unless it reads as JSON.
    onMessage: (jobId) => running.get(String(jobId))?.abort(),
    onResync: () => void readFlags([...running.keys()]).catch(onError),
  };
  await subscriber.subscribe(keys.channel, listener);
  subscriber.onResync(listener);
  return {
    /** A signal for a job starting now; already aborted when the job was cancelled before it started. */
    async watch(jobId: string): Promise<{ signal: AbortSignal; release: () => void }> {
      const controller = new AbortController();
      running.set(jobId, controller);
      await readFlags([jobId]);
      return { signal: controller.signal, release: () => running.delete(jobId) };
    },

    close(): void {
      subscriber.offResync(listener);
      subscriber.unsubscribe(keys.channel, listener);
    },
  };
}
