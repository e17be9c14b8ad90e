import { afterAll, expect, it } from 'vitest';
import {
  JobDocument,
  QueryProgressDocument,
  StartQueryDocument,
  type QueryProgressSubscription,
} from '../src/client/generated.js';
import { startWorkers } from '../src/jobs/workers.js';
import { createLogger } from '../src/logger.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { collect, waitFor } from './helpers/streams.js';

type QueryUpdate = QueryProgressSubscription['queryProgress'];

const stops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

/** An API and a worker whose answers come from test/helpers/test-generator.ts, with these timeouts for queries. */
async function start(softMs: number, hardMs: number) {
  const h: Herald = await startHerald(
    {
      JOB_SOFT_TIMEOUT_MS_QUERY: String(softMs),
      JOB_HARD_TIMEOUT_MS_QUERY: String(hardMs),
      JOB_ATTEMPTS: '1',
      WORKER_METRICS_PORT: '0',
    },
    { workers: false },
  );
  stops.push(() => h.stop());
  const workers = await startWorkers(h.config, createLogger('silent', 'test'), {
    generator: new URL('./helpers/test-generator.ts', import.meta.url),
  });
  stops.push(() => workers.close());
  return { h, metricsUrl: workers.metricsUrl!, token: await h.token('jo') };
}

/** Waits until the worker has counted one query attempt that timed out. */
async function timedOut(metricsUrl: string): Promise<void> {
  const count = async () =>
    metricValue(await scrape(metricsUrl), 'herald_jobs_total', { queue: 'queries', outcome: 'timed_out' });
  await waitFor(async () => (await count()) === 1, 30_000);
}

/** Asks `question` and watches its whole stream. */
async function ask(h: Herald, token: string, question: string) {
  const { body } = await h.http(token, StartQueryDocument, { input: { question } });
  expect(body.errors).toBeUndefined();
  const { queryId, cursor } = body.data!.startQuery;
  const run = await collect<QueryUpdate>(
    h.ws(token),
    QueryProgressDocument,
    { queryId, after: cursor },
    { field: 'queryProgress', timeoutMs: 60_000 },
  );
  const { body: job } = await h.http(token, JobDocument, { id: queryId });
  return { run, job: job.data!.job! };
}

it('soft timeout: a job that ignores its signal is refused its next update and fails with the reason', async () => {
  const { h, token, metricsUrl } = await start(2_000, 120_000);
  const { run, job } = await ask(h, token, 'drip for ever');
  expect(run.completed).toBe(true);
  expect(run.items.some((u) => u.event === 'token')).toBe(true);
  expect(run.items.at(-1)).toMatchObject({ event: 'query_failed', status: 'FAILED', message: 'timed out after 2000 ms' });
  expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
  expect(job).toMatchObject({ state: 'FAILED', failedReason: 'timed out after 2000 ms' });
  await timedOut(metricsUrl);
}, 120_000);

it('hard timeout: a job stuck in a loop is stopped (its thread terminated), its stream ends with FAILED, and the worker goes on', async () => {
  const { h, token, metricsUrl } = await start(5_000, 10_000);
  const stuck = await ask(h, token, 'spin until stopped');
  expect(stuck.run.completed).toBe(true);
  const reason = 'timed out after 5000 ms and did not stop; stopped after 10000 ms';
  expect(stuck.run.items.at(-1)).toMatchObject({ event: 'query_failed', status: 'FAILED', message: reason });
  expect(stuck.job).toMatchObject({ state: 'FAILED', failedReason: reason });
  await timedOut(metricsUrl);

  const next = await ask(h, token, 'answer in 5');
  expect(next.run.items.at(-1)).toMatchObject({ event: 'done', status: 'COMPLETED' });
  expect(next.job.state).toBe('COMPLETED');
}, 120_000);
