import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { crc32 } from 'node:zlib';
import type { Config, JobKind } from '../config.js';

/** The BullMQ queue of each kind of job; with JOB_QUEUE_SHARDS above 1, the stem of its shards' names. */
export const QUEUE_OF: Record<JobKind, string> = { file: 'files', query: 'queries' };

/** A kind's queues: `files` alone, or with N shards `files-0` … `files-{N-1}`. */
export function queueNames(kind: JobKind, shards: number): string[] {
  const stem = QUEUE_OF[kind];
  return shards === 1 ? [stem] : Array.from({ length: shards }, (_, shard) => `${stem}-${shard}`);
}

/** The queue a job is added to and looked up in: fixed by its id, so every API instance finds it. */
function queueOfJob(kind: JobKind, jobId: string, shards: number): string {
  const names = queueNames(kind, shards);
  return names[crc32(jobId) % names.length]!;
}

/** Every job's data: the trace context of the mutation that started it, when tracing is on (its attempts join that trace). */
export interface TracedJobData {
  traceparent?: string;
}

/** What a file job needs; the text itself waits in the document store. */
export interface FileJobData extends TracedJobData {
  fileId: string;
  ownerId: string;
  projectId: string | null;
  name: string;
}

export interface QueryJobData extends TracedJobData {
  queryId: string;
  ownerId: string;
  projectId: string | null;
  question: string;
  /** Null means every processed file of the owner. */
  fileIds: string[] | null;
}

/**
 * All BullMQ keys live under the deployment's key prefix, so tests and tenants never collide. On a
 * Redis Cluster each queue's prefix is a hash tag of its own (`{herald:bull:files-0}`): BullMQ's
 * scripts touch several keys of a queue at once, which a Cluster allows only within one slot, and
 * one tag per queue puts different queues (and shards) in different slots.
 */
export function bullPrefix(config: Pick<Config, 'keyPrefix' | 'redis'>, queue: string): string {
  const prefix = `${config.keyPrefix}bull`;
  return config.redis.mode === 'cluster' ? `{${prefix}:${queue}}` : prefix;
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

/** The producer side of every queue, used by the API: a job's queue is chosen by its kind and id. */
export function createQueues(connection: ConnectionOptions, config: Pick<Config, 'keyPrefix' | 'redis' | 'jobs'>) {
  const shards = config.jobs.queueShards;
  function open<D>(kind: JobKind): Map<string, Queue<D>> {
    return new Map(
      queueNames(kind, shards).map((name) => [name, new Queue<D>(name, { connection, prefix: bullPrefix(config, name) })]),
    );
  }
  const files = open<FileJobData>('file');
  const queries = open<QueryJobData>('query');
  const pick = <D>(queues: Map<string, Queue<D>>, kind: JobKind, jobId: string) => queues.get(queueOfJob(kind, jobId, shards))!;
  return {
    file: (jobId: string) => pick(files, 'file', jobId),
    query: (jobId: string) => pick(queries, 'query', jobId),
    /** The kind of job a queue of `all` runs. */
    kindOf: (queue: Queue): JobKind => (files.has(queue.name) ? 'file' : 'query'),
    /** Every queue, for metrics. */
    all: [...files.values(), ...queries.values()] as ReadonlyArray<Queue<FileJobData> | Queue<QueryJobData>>,
    of: (kind: JobKind, jobId: string): Queue<FileJobData> | Queue<QueryJobData> =>
      kind === 'file' ? pick(files, kind, jobId) : pick(queries, kind, jobId),
    async close(): Promise<void> {
      await Promise.all([...files.values(), ...queries.values()].map((queue) => queue.close()));
    },
  };
}

export type Queues = ReturnType<typeof createQueues>;
