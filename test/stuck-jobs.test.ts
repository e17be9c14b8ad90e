import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { collect, waitFor } from './helpers/streams.js';

const JOB = `query ($id: ID!) { job(id: $id) { state stuck } }`;

let h: Herald;
afterAll(() => h.stop());

it('shows a job waiting past JOB_STUCK_AFTER_MS with no worker as stuck, in its status and a metric, until a worker takes it', async () => {
  h = await startHerald({ JOB_STUCK_AFTER_MS: '1000' }, { workers: false });
  const token = await h.token('jo');
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'a.md', content: 'Some text.' } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const job = async () =>
    (await h.http<{ job: { state: string; stuck: string | null } }>(token, JOB, { id: fileId })).body.data!.job;
  const stuckInMetrics = async () => metricValue(await scrape(h.url), 'herald_jobs_stuck', { queue: 'files' });
  expect(await job()).toEqual({ state: 'WAITING', stuck: null });
  expect(await stuckInMetrics()).toBe(0);

  await waitFor(async () => (await job()).stuck === 'NO_WORKER', 30_000);
  expect((await job()).state).toBe('WAITING');
  expect(await stuckInMetrics()).toBe(1);

  await h.startWorkers();
  await collect(h.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress', timeoutMs: 60_000 });
  expect(await job()).toEqual({ state: 'COMPLETED', stuck: null });
  expect(await stuckInMetrics()).toBe(0);
}, 120_000);
