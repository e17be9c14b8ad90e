import { Worker, type Job } from 'bullmq';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createNotificationStore } from '../notifications/store.js';
import { NOTIFICATION_LIMITS, type NotificationInput } from '../notifications/types.js';
import { createRedis } from '../redis.js';
import { createUpdateStore } from '../updates/store.js';
import type { ResourceKind } from '../updates/types.js';
import { createExtractiveGenerator } from './answer/extractive.js';
import type { AnswerGenerator } from './answer/generator.js';
import { answerQuery } from './answer-query.js';
import { createCancelWatcher } from './cancel.js';
import { createDocumentStore } from './documents.js';
import { processFile } from './process-file.js';
import { bullPrefix, QUEUE_OF, type FileJobData, type QueryJobData } from './queues.js';
import { runAttempt, type JobOutcome } from './run-attempt.js';

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

/**
 * Starts the processors of both queues in this process. Workers write progress through the
 * update store and tell owners through the notification store; they import nothing of the API.
 */
export async function startWorkers(config: Config, logger: Logger, options: WorkerOptions = {}) {
  const commands = createRedis(config.redisUrl, 'commands', logger);
  const subscriber = createRedis(config.redisUrl, 'subscriber', logger);
  const bull = createRedis(config.redisUrl, 'bullmq', logger);
  const store = createUpdateStore(commands, {
    keyPrefix: config.keyPrefix,
    historyLimit: config.updates.historyLimit,
    ttlSeconds: config.updates.ttlSeconds,
  });
  const documents = createDocumentStore(commands, config.keyPrefix, config.updates.ttlSeconds);
  const notifications = createNotificationStore(commands, { keyPrefix: config.keyPrefix, ...config.notifications });
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
  const cancels = await createCancelWatcher(commands, subscriber, config.keyPrefix);
  const maxSentences = 3;
  const generator = options.generator ?? createExtractiveGenerator({ maxSentences });
  const common = { store, cancels, timeoutMs: config.jobs.timeoutMs };
  const workerOptions = { connection: bull, prefix: bullPrefix(config), concurrency: config.jobs.concurrency };

  const files = new Worker<FileJobData>(
    QUEUE_OF.file,
    (job: Job<FileJobData>) =>
      runAttempt({
        ...common,
        job,
        ref: { kind: 'file', id: job.data.fileId, projectId: job.data.projectId },
        failedEvent: 'processing_failed',
        work: (context) => processFile(job.data, documents, config.jobs, context),
        onFinished: notifyOwner({
          kind: 'file',
          id: job.data.fileId,
          ownerId: job.data.ownerId,
          label: job.data.name,
        }),
      }),
    workerOptions,
  );
  const queries = new Worker<QueryJobData>(
    QUEUE_OF.query,
    (job: Job<QueryJobData>) =>
      runAttempt({
        ...common,
        job,
        ref: { kind: 'query', id: job.data.queryId, projectId: job.data.projectId },
        failedEvent: 'query_failed',
        onFinished: notifyOwner({
          kind: 'query',
          id: job.data.queryId,
          ownerId: job.data.ownerId,
          label: job.data.question,
        }),
        work: (context) =>
          answerQuery(
            job.data,
            documents,
            generator,
            { ...config.jobs, candidates: 20, maxSentences },
            context,
          ),
      }),
    workerOptions,
  );
  for (const worker of [files, queries]) {
    worker.on('completed', (job) => logger.info({ queue: worker.name, jobId: job.id, attempts: job.attemptsMade }, 'job completed'));
    worker.on('failed', (job, error) => logger.warn({ queue: worker.name, jobId: job?.id, attempt: job?.attemptsMade, reason: error.message }, 'job attempt failed'));
    worker.on('error', (error) => logger.error({ queue: worker.name, err: error.message }, 'worker error'));
  }
  await Promise.all([files.waitUntilReady(), queries.waitUntilReady()]);

  return {
    async close(): Promise<void> {
      await Promise.all([files.close(), queries.close()]);
      await Promise.all(notifying);
      for (const connection of [commands, subscriber, bull]) connection.disconnect();
    },
  };
}
