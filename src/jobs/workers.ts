import { Worker, type Job } from 'bullmq';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Config, JobKind } from '../config.js';
import type { Logger } from '../logger.js';
import { createRegistry, serveMetrics, watchRedis } from '../metrics.js';
import { createNotificationStore } from '../notifications/store.js';
import { NOTIFICATION_LIMITS, type NotificationInput } from '../notifications/types.js';
import { createRedisConnections } from '../redis.js';
import type { ResourceKind } from '../resources/registry.js';
import { createUpdateHub } from '../updates/hub.js';
import { createUpdateStore, StreamEndedError } from '../updates/store.js';
import { createCancelWatcher } from './cancel.js';
import { createDocumentStore } from './documents.js';
import { startHeartbeat } from './heartbeat.js';
import { createJobThreads } from './job-threads.js';
import { countPublished, tracePublished } from './metrics.js';
import { bullPrefix, QUEUE_OF, queueNames, type FileJobData, type QueryJobData } from './queues.js';
import { JobEndedError, runAttempt, type AttemptOutcome, type JobOutcome } from './run-attempt.js';

export interface WorkerOptions {
  /**
   * A module whose default export makes the AnswerGenerator, loaded in each job thread; defaults
   * to the extractive generator. Any other model plugs in here.
   */
  generator?: URL;
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
 * Job threads a worker keeps loaded (more start when more jobs run at once, and stay): a job that
 * finds none idle waits for one to load its modules, about half a second.
 */
const JOB_THREADS_WARM = 1;

/** Attempts take from milliseconds (a short answer) to minutes (a large document). */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** A worker's job metrics, beside the published-updates counter every producer has. */
function createJobMetrics(registry: Registry) {
  const labelNames = ['queue', 'outcome'] as const;
  return {
    attempts: new Counter({
      name: 'herald_jobs_total',
      help:
        'Job attempts this worker ended, by queue and outcome: completed, failed, timed_out or cancelled (for good), ' +
        'retried (another attempt follows).',
      labelNames,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'herald_job_duration_seconds',
      help: 'Seconds from an attempt becoming active on this worker to its end, by queue and outcome.',
      labelNames,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
  };
}

/** How an attempt BullMQ reports as completed (no error) or failed ended. */
function outcomeOf(job: Job, error?: Error): AttemptOutcome {
  if (!error) return 'completed';
  if (error instanceof JobEndedError) return error.outcome;
  return job.finishedOn ? 'failed' : 'retried';
}

const OUTCOME_MESSAGES: Record<AttemptOutcome, string> = {
  completed: 'job completed',
  failed: 'job failed',
  timed_out: 'job timed out',
  cancelled: 'job cancelled',
  retried: 'job attempt failed, retrying',
};

/** One queue's processor (run in a job thread by kind): which resource a job is about, how its failure is named. */
interface QueueSpec<D> {
  kind: JobKind;
  failedEvent: string;
  resource(data: D): { id: string; projectId: string | null; ownerId: string; label: string };
}

/**
 * Starts the processors of the job kinds this process runs (WORKER_QUEUES; every shard of each).
 * Workers write progress through the
 * update store and tell owners through the notification store; they import nothing of the API.
 * With WORKER_METRICS_PORT set, /metrics and /healthz are served on it.
 */
export async function startWorkers(config: Config, logger: Logger, options: WorkerOptions = {}) {
  const registry = createRegistry();
  const jobMetrics = createJobMetrics(registry);
  const { metricsPort: port } = config.jobs;
  const metricsServer =
    port === null ? null : await serveMetrics(registry, { host: config.host, port, instance: config.instance });
  const redis = createRedisConnections(config.redis, logger);
  watchRedis(registry, { commands: redis.commands, subscriber: redis.subscriber, bullmq: redis.bullmq });
  const store = tracePublished(
    countPublished(createUpdateStore(redis.commands, { keyPrefix: config.keyPrefix, ...config.updates }), registry),
    config.tracing !== null,
  );
  const documents = createDocumentStore(redis.commands, config.keyPrefix, config.updates.ttlSeconds);
  const notifications = createNotificationStore(redis.commands, { keyPrefix: config.keyPrefix, ...config.notifications });
  const cancels = await createCancelWatcher(redis.commands, createUpdateHub(redis.subscriber), config.keyPrefix, (error) =>
    logger.error({ err: error.message }, 'could not read cancel requests after the subscriber reconnected'),
  );
  const threads = createJobThreads({
    documents,
    data: {
      settings: { files: config.jobs, answers: { ...config.jobs, candidates: 20, maxSentences: 3 } },
      generator: options.generator?.href ?? null,
    },
    onError: (error) => logger.error({ err: error.message }, 'an idle job thread failed'),
    warm: JOB_THREADS_WARM,
  });
  const notifying = new Set<Promise<void>>();

  /** Tells a job's owner how it ended, beside the job; a failure to notify is logged, never fails the job. */
  function notifyOwner(resource: Parameters<typeof ownerNotice>[0]) {
    return (outcome: JobOutcome<unknown>): void => {
      const sending = notifications.send(ownerNotice(resource, outcome)).then(
        () => undefined,
        (error: Error) =>
          logger.error({ kind: resource.kind, id: resource.id, err: error.message }, 'could not notify the owner'),
      );
      notifying.add(sending);
      void sending.finally(() => notifying.delete(sending));
    };
  }

  /** Ends a failed job's stream with FAILED unless its processor already ended it. */
  async function endStream<D>(spec: QueueSpec<D>, data: D, reason: string): Promise<void> {
    const { id, projectId } = spec.resource(data);
    await store
      .append({ kind: spec.kind, id, projectId }, { event: spec.failedEvent, status: 'FAILED', message: reason })
      .catch((error: unknown) => {
        if (!(error instanceof StreamEndedError))
          logger.error({ kind: spec.kind, id, err: (error as Error).message }, 'could not end the stream');
      });
  }

  function startQueueWorker<D>(spec: QueueSpec<D>, queue: string): Worker<D> {
    const worker = new Worker<D>(
      queue,
      (job: Job<D>) => {
        const resource = spec.resource(job.data);
        const heartbeat = startHeartbeat(redis.commands, config.keyPrefix, job.id!, config.jobs.heartbeatTimeoutMs, (error) =>
          logger.warn({ queue, jobId: job.id, err: error.message }, 'could not refresh the heartbeat'),
        );
        return runAttempt({
          job,
          store,
          cancels,
          timeouts: config.jobs.timeouts[spec.kind],
          ref: { kind: spec.kind, id: resource.id, projectId: resource.projectId },
          failedEvent: spec.failedEvent,
          work: (context, stop) => threads.run(spec.kind, job.data, context, stop),
          onFinished: notifyOwner({ kind: spec.kind, ...resource }),
        }).finally(() => heartbeat.stop());
      },
      {
        connection: redis.bullmq,
        prefix: bullPrefix(config, queue),
        concurrency: config.jobs.concurrency,
        lockDuration: config.jobs.lockMs,
        stalledInterval: config.jobs.stalledIntervalMs,
      },
    );
    /** One log line and one count per attempt, however it ended. */
    const ended = (job: Job<D>, error?: Error) => {
      const outcome = outcomeOf(job, error);
      const seconds = Math.max(0, (job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      // Counted per kind (the unsharded queue's name), whatever the shard: one series however many shards.
      const labels = { queue: QUEUE_OF[spec.kind], outcome };
      jobMetrics.attempts.inc(labels);
      jobMetrics.duration.observe(labels, seconds);
      const line = {
        queue: worker.name,
        jobId: job.id,
        resourceId: spec.resource(job.data).id,
        attempts: job.attemptsMade,
        outcome,
        durationMs: Math.round(seconds * 1000),
        reason: error?.message,
      };
      if (outcome === 'completed' || outcome === 'cancelled') logger.info(line, OUTCOME_MESSAGES[outcome]);
      else logger.warn(line, OUTCOME_MESSAGES[outcome]);
    };
    worker.on('completed', (job) => ended(job));
    worker.on('failed', (job, error) => {
      if (!job) {
        logger.warn({ queue: worker.name, reason: error.message }, 'job failed');
        return;
      }
      ended(job, error);
      // A job BullMQ failed on its own (stalled too often) never reached our processor's handler.
      if (job.finishedOn) void endStream(spec, job.data, error.message);
    });
    worker.on('error', (error) => logger.error({ queue: worker.name, err: error.message }, 'worker error'));
    return worker;
  }

  const files: QueueSpec<FileJobData> = {
    kind: 'file',
    failedEvent: 'processing_failed',
    resource: (data) => ({ id: data.fileId, projectId: data.projectId, ownerId: data.ownerId, label: data.name }),
  };
  const queries: QueueSpec<QueryJobData> = {
    kind: 'query',
    failedEvent: 'query_failed',
    resource: (data) => ({ id: data.queryId, projectId: data.projectId, ownerId: data.ownerId, label: data.question }),
  };
  /** Every shard of each kind this process runs. */
  const startKind = <D>(spec: QueueSpec<D>) =>
    config.jobs.workerKinds.includes(spec.kind)
      ? queueNames(spec.kind, config.jobs.queueShards).map((queue) => startQueueWorker(spec, queue))
      : [];
  const workers = [...startKind(files), ...startKind(queries)];
  await Promise.all([...workers.map((worker) => worker.waitUntilReady()), threads.ready()]);

  return {
    /** Where /metrics is served (WORKER_METRICS_PORT), or null. */
    metricsUrl: metricsServer?.url ?? null,
    async close(): Promise<void> {
      await Promise.all(workers.map((worker) => worker.close()));
      await threads.close();
      cancels.close();
      await Promise.all(notifying);
      redis.disconnect();
      await metricsServer?.close();
    },
  };
}
