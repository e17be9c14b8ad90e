import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { collect, waitFor } from './helpers/streams.js';

const JOB = `query ($id: ID!) { job(id: $id) { state stuck } }`;
const INBOX = `{ notificationInbox(first: 10) { edges { node { title level data } } } }`;
interface Inbox {
  notificationInbox: { edges: Array<{ node: { title: string; level: string; data: unknown } }> };
}

let h: Herald;
afterAll(() => h.stop());

it('shows a job waiting past JOB_STUCK_AFTER_MS with no worker as stuck, in its status, a metric and one notification to admins, until a worker takes it', async () => {
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

  const admin = await h.token({ sub: 'root', roles: ['admin'] });
  const told = async () =>
    (
      await h.http<{ notificationInbox: { edges: Array<{ node: { title: string; level: string; data: unknown } }> } }>(
        admin,
        INBOX,
      )
    ).body.data!.notificationInbox.edges.map((edge) => edge.node);
  await waitFor(async () => (await told()).length > 0, 30_000);
  // Checked every 500 ms here: a few more checks, still one notification.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  expect(await told()).toEqual([
    {
      title: 'A file job is stuck: no worker consumes files',
      level: 'WARNING',
      data: { kind: 'FILE', id: fileId, reason: 'NO_WORKER' },
    },
  ]);
  expect((await h.http<Inbox>(token, INBOX)).body.data!.notificationInbox.edges).toEqual([]);

  await h.startWorkers();
  await collect(h.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress', timeoutMs: 60_000 });
  expect(await job()).toEqual({ state: 'COMPLETED', stuck: null });
  expect(await stuckInMetrics()).toBe(0);
}, 120_000);
