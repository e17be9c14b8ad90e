import { Worker, type Job } from 'bullmq';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createRedis } from '../redis.js';
import { createUpdateStore } from '../updates/store.js';
import { createExtractiveGenerator } from './answer/extractive.js';
import type { AnswerGenerator } from './answer/generator.js';
import { answerQuery } from './answer-query.js';
import { createCancelWatcher } from './cancel.js';
import { createDocumentStore } from './documents.js';
import { processFile } from './process-file.js';
import { bullPrefix, QUEUE_OF, type FileJobData, type QueryJobData } from './queues.js';
import { runAttempt } from './run-attempt.js';

export interface WorkerOptions {
  /** Defaults to the extractive generator; any other model plugs in here. */
  generator?: AnswerGenerator;
}

/**
 * Starts the processors of both queues in this process. Workers write progress through the
 * update store only; they import nothing of the API.
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
      for (const connection of [commands, subscriber, bull]) connection.disconnect();
    },
  };
}
