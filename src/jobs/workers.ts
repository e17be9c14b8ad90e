import { Worker, type Job } from 'bullmq';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createNotificationStore } from '../notifications/store.js';
import { NOTIFICATION_LIMITS, type NotificationInput } from '../notifications/types.js';
import { createRedisConnections } from '../redis.js';
import { createUpdateStore, StreamEndedError } from '../updates/store.js';
import type { ResourceKind } from '../updates/types.js';
import { createExtractiveGenerator } from './answer/extractive.js';
import type { AnswerGenerator } from './answer/generator.js';
import { answerQuery } from './answer-query.js';
import { createCancelWatcher } from './cancel.js';
import { createDocumentStore } from './documents.js';
import { processFile } from './process-file.js';
import { bullPrefix, QUEUE_OF, type FileJobData, type QueryJobData } from './queues.js';
import { runAttempt, type JobContext, type JobOutcome } from './run-attempt.js';

export interface WorkerOptions {
  /** Defaults to the extractive generator; any other model plugs in here. */
  generator?: AnswerGenerator;
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** What the owner of a finished job is told: SUCCESS or ERROR, linking the file or query. */
function ownerNotice(
  resource: { kind: ResourceKind; id: string; ownerId: string; label: string },
  outcome: JobOutcome<unknown>,
): NotificationInput {
  const what = resource.kind === 'file' ? 'Processing' : 'Answering';
  const status = outcome.ok ? 'finished' : 'failed';
  const prefix = `${what} ${status}: `;
  return {
    target: { kind: 'USER', id: resource.ownerId },
    level: outcome.ok ? 'SUCCESS' : 'ERROR',
    title: prefix + shorten(resource.label.trim() || resource.id, NOTIFICATION_LIMITS.titleLength - prefix.length),
    body: outcome.ok ? null : shorten(outcome.reason, NOTIFICATION_LIMITS.bodyLength),
    data: { kind: resource.kind.toUpperCase(), id: resource.id },
  };
}

/** One queue's processor: which resource a job is about, what it does, how its failure is named. */
interface QueueSpec<D> {
  kind: ResourceKind;
  failedEvent: string;
  resource(data: D): { id: string; projectId: string | null; ownerId: string; label: string };
  work(data: D, context: JobContext): Promise<unknown>;
}

/**
 * Starts the processors of both queues in this process. Workers write progress through the
 * update store and tell owners through the notification store; they import nothing of the API.
 */
export async function startWorkers(config: Config, logger: Logger, options: WorkerOptions = {}) {
  const redis = createRedisConnections(config.redis, logger);
  const store = createUpdateStore(redis.commands, { keyPrefix: config.keyPrefix, ...config.updates });
  const documents = createDocumentStore(redis.commands, config.keyPrefix, config.updates.ttlSeconds);
  const notifications = createNotificationStore(redis.commands, { keyPrefix: config.keyPrefix, ...config.notifications });
  const cancels = await createCancelWatcher(redis.commands, redis.subscriber, config.keyPrefix);
  const maxSentences = 3;
  const generator = options.generator ?? createExtractiveGenerator({ maxSentences });
  const notifying = new Set<Promise<void>>();

  /** Tells a job's owner how it ended, beside the job; a failure to notify is logged, never fails the job. */
  function notifyOwner(resource: Parameters<typeof ownerNotice>[0]) {
    return (outcome: JobOutcome<unknown>): void => {
      const sending = notifications.send(ownerNotice(resource, outcome)).then(
        () => undefined,
        (error: Error) => logger.error({ kind: resource.kind, id: resource.id, err: error.message }, 'could not notify the owner'),
      );
      notifying.add(sending);
      void sending.finally(() => notifying.delete(sending));
    };
  }

  /** Ends a failed job's stream with FAILED unless its processor already ended it. */
  async function endStream<D>(spec: QueueSpec<D>, data: D, reason: string): Promise<void> {
    const { id, projectId } = spec.resource(data);
    await store.append({ kind: spec.kind, id, projectId }, { event: spec.failedEvent, status: 'FAILED', message: reason }).catch((error: unknown) => {
      if (!(error instanceof StreamEndedError)) logger.error({ kind: spec.kind, id, err: (error as Error).message }, 'could not end the stream');
    });
  }

  function startQueueWorker<D>(spec: QueueSpec<D>): Worker<D> {
    const worker = new Worker<D>(
      QUEUE_OF[spec.kind],
      (job: Job<D>) => {
        const resource = spec.resource(job.data);
        return runAttempt({
          job,
          store,
          cancels,
          timeoutMs: config.jobs.timeoutMs,
          ref: { kind: spec.kind, id: resource.id, projectId: resource.projectId },
          failedEvent: spec.failedEvent,
          work: (context) => spec.work(job.data, context),
          onFinished: notifyOwner({ kind: spec.kind, ...resource }),
        });
      },
      {
        connection: redis.bullmq,
        prefix: bullPrefix(config),
        concurrency: config.jobs.concurrency,
        lockDuration: config.jobs.lockMs,
        stalledInterval: config.jobs.stalledIntervalMs,
      },
    );
    worker.on('completed', (job) => logger.info({ queue: worker.name, jobId: job.id, attempts: job.attemptsMade }, 'job completed'));
    worker.on('failed', (job, error) => {
      logger.warn({ queue: worker.name, jobId: job?.id, attempt: job?.attemptsMade, reason: error.message }, 'job attempt failed');
      // A job BullMQ failed on its own (stalled too often) never reached our processor's handler.
      if (job?.finishedOn) void endStream(spec, job.data, error.message);
    });
    worker.on('error', (error) => logger.error({ queue: worker.name, err: error.message }, 'worker error'));
    return worker;
  }

  const workers = [
    startQueueWorker<FileJobData>({
      kind: 'file',
      failedEvent: 'processing_failed',
      resource: (data) => ({ id: data.fileId, projectId: data.projectId, ownerId: data.ownerId, label: data.name }),
      work: (data, context) => processFile(data, documents, config.jobs, context),
    }),
    startQueueWorker<QueryJobData>({
      kind: 'query',
      failedEvent: 'query_failed',
      resource: (data) => ({ id: data.queryId, projectId: data.projectId, ownerId: data.ownerId, label: data.question }),
      work: (data, context) =>
        answerQuery(data, documents, generator, { ...config.jobs, candidates: 20, maxSentences }, context),
    }),
  ];
  await Promise.all(workers.map((worker) => worker.waitUntilReady()));

  return {
    async close(): Promise<void> {
      await Promise.all(workers.map((worker) => worker.close()));
      await Promise.all(notifying);
      redis.disconnect();
    },
  };
}
