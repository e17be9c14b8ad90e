import { afterAll, describe, expect, it } from 'vitest';
import {
  CancelJobDocument,
  FileProgressDocument,
  JobDocument,
  QueryProgressDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type FileProgressSubscription,
  type QueryProgressSubscription,
} from '../src/client/generated.js';
import { startWorkers } from '../src/jobs/workers.js';
import { createLogger } from '../src/logger.js';
import { makeDocument } from './helpers/documents.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { fileWithoutSentences } from './helpers/jobs.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { freePort } from './helpers/redis-server.js';
import { startRedisProxy } from './helpers/redis-proxy.js';
import { connect, redisUrl } from './helpers/redis.js';
import { collect, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];
type QueryUpdate = QueryProgressSubscription['queryProgress'];

const redis = connect();
const started: Herald[] = [];
const stopAfter: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all([...started.map((h) => h.stop()), ...stopAfter.map((stop) => stop())]);
  redis.disconnect();
});

async function herald(env: Record<string, string> = {}, workers = true) {
  const h = await startHerald(env, { workers });
  started.push(h);
  return { h, token: await h.token('jo') };
}

async function startFile(h: Herald, token: string, content: string) {
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'doc.md', content } });
  expect(body.errors).toBeUndefined();
  return body.data!.startFileProcessing;
}

async function job(h: Herald, token: string, id: string) {
  const { body } = await h.http(token, JobDocument, { id });
  expect(body.errors).toBeUndefined();
  return body.data!.job!;
}

/** Waits until the worker serving `metricsUrl` has counted `count` attempts of `queue` that ended with `outcome`. */
async function attemptsEnded(metricsUrl: string, queue: string, outcome: string, count: number): Promise<void> {
  await waitFor(async () => metricValue(await scrape(metricsUrl), 'herald_jobs_total', { queue, outcome }) === count);
}

function watchFile(h: Herald, token: string, fileId: string, after: string, until?: (items: FileUpdate[]) => boolean) {
  return collect<FileUpdate>(h.ws(token), FileProgressDocument, { fileId, after }, { field: 'fileProgress', until });
}

describe('jobs', () => {
  it("reports the outcome of a job's stream as soon as it is stored, before BullMQ records the attempt", async () => {
    // No worker: BullMQ still has the job waiting when its stream's terminal update is appended.
    const { h, token } = await herald({}, false);
    const file = await startFile(h, token, makeDocument(1));
    await h.app.services.store.append(
      { kind: 'file', id: file.fileId },
      { event: 'processing_completed', status: 'COMPLETED', progress: 100 },
    );
    expect(await job(h, token, file.fileId)).toMatchObject({ state: 'COMPLETED', progress: 100, failedReason: null });
  });

  it('reports a job through its life: waiting, then completed with its result', async () => {
    const { h, token } = await herald({}, false);
    const file = await startFile(h, token, makeDocument(3));
    expect(file.job).toMatchObject({ id: file.fileId, state: 'WAITING', attemptsMade: 0, progress: 0, finishedAt: null });
    await h.startWorkers();
    const run = await watchFile(h, token, file.fileId, file.cursor);
    expect(run.completed).toBe(true);
    const done = await job(h, token, file.fileId);
    expect(done).toMatchObject({ state: 'COMPLETED', progress: 100, attemptsMade: 1, failedReason: null });
    expect(done.result).toEqual(run.items.at(-1)!.data);
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));
    const { body } = await h.http(token, JobDocument, { id: '00000000-0000-0000-0000-000000000000' });
    expect(body.data!.job).toBeNull();
    expect(body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('cancels a waiting job at once: removed, CANCELLED, and its stream completes', async () => {
    const { h, token } = await herald({}, false);
    const file = await startFile(h, token, makeDocument(2));
    const watching = watchFile(h, token, file.fileId, file.cursor);
    const { body } = await h.http(token, CancelJobDocument, { id: file.fileId });
    expect(body.data!.cancelJob.state).toBe('CANCELLED');
    const run = await watching;
    expect(run.items.map((u) => [u.seq, u.event, u.status])).toEqual([
      [1, 'queued', 'QUEUED'],
      [2, 'cancelled', 'CANCELLED'],
    ]);
    expect(run.completed).toBe(true);
    // A job queued after it runs to the end: the worker has been past the cancelled one, and left it.
    await h.startWorkers();
    const later = await startFile(h, token, makeDocument(1));
    expect((await watchFile(h, token, later.fileId, later.cursor)).completed).toBe(true);
    expect((await job(h, token, file.fileId)).state).toBe('CANCELLED');
  });

  it('cancels a running job run by a worker in another process; the worker stops at its next step', async () => {
    const { h, token } = await herald({ CHUNK_CHARS: '100' }, false);
    const metricsPort = await freePort();
    const worker = spawnEntry('src/worker.ts', {
      REDIS_URL: redisUrl(),
      KEY_PREFIX: h.config.keyPrefix,
      CHUNK_CHARS: '100',
      HOST: '127.0.0.1',
      WORKER_METRICS_PORT: String(metricsPort),
    });
    stopAfter.push(() => worker.stop());
    await waitForOutput(worker, 'worker ready');
    const file = await startFile(h, token, makeDocument(4_000));
    const firstProgress = watchFile(h, token, file.fileId, file.cursor, (items) =>
      items.some((u) => u.event === 'extraction_progress'),
    );
    const whole = watchFile(h, token, file.fileId, file.cursor);
    await firstProgress;
    const { body } = await h.http(token, CancelJobDocument, { id: file.fileId });
    expect(body.errors).toBeUndefined();
    const run = await whole;
    expect(run.completed).toBe(true);
    const last = run.items.at(-1)!;
    expect(last).toMatchObject({ event: 'cancelled', status: 'CANCELLED' });
    expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
    expect(run.items.some((u) => u.event === 'processing_completed')).toBe(false);
    const state = await job(h, token, file.fileId);
    expect(state.state).toBe('CANCELLED');
    expect(state.failedReason).toBeNull();
    await attemptsEnded(`http://127.0.0.1:${metricsPort}`, 'files', 'cancelled', 1);
  });

  it('cancels a running job whose worker was not subscribed when the cancel was sent', async () => {
    const { h, token } = await herald({ CHUNK_CHARS: '100' }, false);
    const proxy = await startRedisProxy(redisUrl());
    stopAfter.push(() => proxy.close());
    // A real worker whose Redis connections go through the proxy, so its subscriber alone can be cut.
    const workers = await startWorkers(
      { ...h.config, redis: { mode: 'single', url: proxy.url, tls: null } },
      createLogger('silent', 'test'),
    );
    stopAfter.push(() => workers.close());
    const file = await startFile(h, token, makeDocument(4_000));
    const firstProgress = watchFile(h, token, file.fileId, file.cursor, (items) =>
      items.some((u) => u.event === 'extraction_progress'),
    );
    const whole = watchFile(h, token, file.fileId, file.cursor);
    await firstProgress;
    proxy.cut('herald-subscriber');
    const { body } = await h.http(token, CancelJobDocument, { id: file.fileId });
    expect(body.errors).toBeUndefined();
    proxy.restore();
    const run = await whole;
    expect(run.items.at(-1)).toMatchObject({ event: 'cancelled', status: 'CANCELLED' });
    expect(run.items.some((u) => u.event === 'processing_completed')).toBe(false);
    expect((await job(h, token, file.fileId)).state).toBe('CANCELLED');
  });

  it('retries a failed attempt with backoff, says so in the stream, and succeeds on the next one', async () => {
    const { h, token } = await herald({ JOB_BACKOFF_MS: '300', WORKER_METRICS_PORT: '0' });
    const file = await fileWithoutSentences(h, redis, token);

    const { body } = await h.http(token, StartQueryDocument, {
      input: { question: 'What does a cache keep?', fileIds: [file.fileId] },
    });
    const { queryId, cursor } = body.data!.startQuery;
    const run = await collect<QueryUpdate>(
      h.ws(token),
      QueryProgressDocument,
      { queryId, after: cursor },
      {
        field: 'queryProgress',
        until: (items) => {
          if (items.at(-1)?.event === 'attempt_failed') void file.restore();
          return items.at(-1)?.event === 'done';
        },
      },
    );
    const events = run.items.map((u) => u.event);
    expect(events.slice(0, 3)).toEqual(['queued', 'retrieving', 'attempt_failed']);
    const retry = nth(run.items, 2);
    expect(retry.status).toBe('QUEUED');
    expect(retry.message).toContain(`file ${file.fileId} is not processed yet`);
    expect(retry.data).toMatchObject({ attempt: 1, attempts: 3, retryInMs: 300 });
    expect(events.slice(3, 5)).toEqual(['retrieving', 'generating']);
    expect(run.items.at(-1)!.text).toContain('A cache keeps hot data close.');
    // The first attempt's reason does not outlive the attempt that completed.
    expect(await job(h, token, queryId)).toMatchObject({ state: 'COMPLETED', attemptsMade: 2, failedReason: null });
    await attemptsEnded(h.workerMetricsUrl()!, 'queries', 'completed', 1);
    await attemptsEnded(h.workerMetricsUrl()!, 'queries', 'retried', 1);
  });

  it('fails for good after the last attempt, with the reason in the stream and the job', async () => {
    const { h, token } = await herald({ JOB_ATTEMPTS: '2', WORKER_METRICS_PORT: '0' });
    const file = await fileWithoutSentences(h, redis, token, 'Some text here.');
    const { body } = await h.http(token, StartQueryDocument, { input: { question: 'anything?', fileIds: [file.fileId] } });
    const { queryId, cursor } = body.data!.startQuery;
    const run = await collect<QueryUpdate>(
      h.ws(token),
      QueryProgressDocument,
      { queryId, after: cursor },
      { field: 'queryProgress' },
    );
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => [u.event, u.status])).toEqual([
      ['queued', 'QUEUED'],
      ['retrieving', 'PROCESSING'],
      ['attempt_failed', 'QUEUED'],
      ['retrieving', 'PROCESSING'],
      ['query_failed', 'FAILED'],
    ]);
    expect(run.items.at(-1)!.message).toBe(`file ${file.fileId} is not processed yet`);
    const failed = await job(h, token, queryId);
    expect(failed).toMatchObject({ state: 'FAILED', attemptsMade: 2, failedReason: `file ${file.fileId} is not processed yet` });
    await attemptsEnded(h.workerMetricsUrl()!, 'queries', 'retried', 1);
    await attemptsEnded(h.workerMetricsUrl()!, 'queries', 'failed', 1);
  });

  it('enforces the per-job timeout: an attempt past it is aborted and fails with a clear reason', async () => {
    const { h, token } = await herald({ JOB_TIMEOUT_MS: '150', JOB_ATTEMPTS: '1', CHUNK_CHARS: '100', WORKER_METRICS_PORT: '0' });
    const file = await startFile(h, token, makeDocument(4_000));
    const run = await watchFile(h, token, file.fileId, file.cursor);
    expect(run.completed).toBe(true);
    expect(run.items.at(-1)).toMatchObject({ event: 'processing_failed', status: 'FAILED', message: 'timed out after 150 ms' });
    expect((await job(h, token, file.fileId)).state).toBe('FAILED');
    await attemptsEnded(h.workerMetricsUrl()!, 'files', 'timed_out', 1);
  });
});
