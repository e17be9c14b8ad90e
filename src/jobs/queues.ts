import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import type { Config } from '../config.js';
import type { ResourceKind } from '../resources/registry.js';

/** BullMQ queue of each kind of resource. */
export const QUEUE_OF: Record<ResourceKind, string> = { file: 'files', query: 'queries' };

/** What a file job needs; the text itself waits in the document store. */
export interface FileJobData {
  fileId: string;
  ownerId: string;
  projectId: string | null;
  name: string;
}

export interface QueryJobData {
  queryId: string;
  ownerId: string;
  projectId: string | null;
  question: string;
  /** Null means every processed file of the owner. */
  fileIds: string[] | null;
}

/**
 * All BullMQ keys live under the deployment's key prefix, so tests and tenants never collide. On a
 * Redis Cluster the prefix is a hash tag (`{herald:bull}`): BullMQ's scripts touch several keys of
 * a queue at once, which a Cluster allows only within one slot.
 */
export function bullPrefix(config: Pick<Config, 'keyPrefix' | 'redis'>): string {
  const prefix = `${config.keyPrefix}bull`;
  return config.redis.mode === 'cluster' ? `{${prefix}}` : prefix;
}

/** Retries with exponential backoff; finished jobs are kept a day so `job(id)` can report them. */
export function jobOptions(config: Pick<Config, 'jobs'>, jobId: string): JobsOptions {
  return {
    jobId,
    attempts: config.jobs.attempts,
    backoff: { type: 'exponential', delay: config.jobs.backoffMs },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 24 * 3600, count: 10_000 },
  };
}

/** The producer side of the two queues, used by the API. */
export function createQueues(connection: ConnectionOptions, config: Pick<Config, 'keyPrefix' | 'redis'>) {
  const prefix = bullPrefix(config);
  const queues = {
    file: new Queue<FileJobData>(QUEUE_OF.file, { connection, prefix }),
    query: new Queue<QueryJobData>(QUEUE_OF.query, { connection, prefix }),
  };
  return {
    ...queues,
    async close(): Promise<void> {
      await Promise.all([queues.file.close(), queues.query.close()]);
    },
  };
}

export type Queues = ReturnType<typeof createQueues>;
