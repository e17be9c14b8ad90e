import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { redisUrl } from './helpers/redis.js';
import { collect, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const JOB = `query ($id: ID!) { job(id: $id) { state stuck } }`;
const INBOX = `{ notificationInbox(first: 10) { edges { node { title level data } } } }`;
interface Inbox {
  notificationInbox: { edges: Array<{ node: { title: string; level: string; data: unknown } }> };
}

const started: Array<{ stop(): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(started.map((process) => process.stop()));
});

async function herald(env: Record<string, string>): Promise<Herald> {
  const h = await startHerald(env, { workers: false });
  started.push(h);
  return h;
}

/** What role `admin` has been told, newest first. */
async function toldAdmins(h: Herald) {
  const admin = await h.token({ sub: 'root', roles: ['admin'] });
  return (await h.http<Inbox>(admin, INBOX)).body.data!.notificationInbox.edges.map((edge) => edge.node);
}

it('shows a job waiting past JOB_STUCK_AFTER_MS with no worker as stuck, in its status, a metric and one notification to admins, until a worker takes it', async () => {
  const h = await herald({ JOB_STUCK_AFTER_MS: '1000' });
  const token = await h.token('jo');
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'a.md', content: 'Some text.' } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const job = async () =>
    (await h.http<{ job: { state: string; stuck: string | null } }>(token, JOB, { id: fileId })).body.data!.job;
  const stuckInMetrics = async () =>
    metricValue(await scrape(h.url), 'herald_jobs_stuck', { queue: 'files', reason: 'NO_WORKER' });
  expect(await job()).toEqual({ state: 'WAITING', stuck: null });
  expect(await stuckInMetrics()).toBe(0);

  await waitFor(async () => (await job()).stuck === 'NO_WORKER', 30_000);
  expect((await job()).state).toBe('WAITING');
  expect(await stuckInMetrics()).toBe(1);

  const told = () => toldAdmins(h);
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

it('shows a running job whose worker froze (SIGSTOP: no heartbeat) as stuck, in its status, a metric and one notification to admins, until the worker is back', async () => {
  const env = { JOB_HEARTBEAT_TIMEOUT_MS: '2000', CHUNK_CHARS: '100', PROGRESS_UPDATES: '100000', HISTORY_LIMIT: '10000' };
  const h = await herald(env);
  const worker = spawnEntry('src/worker.ts', { REDIS_URL: redisUrl(), KEY_PREFIX: h.config.keyPrefix, ...env });
  started.push(worker);
  await waitForOutput(worker, 'worker ready');
  const token = await h.token('jo');
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'long.md', content: makeDocument(500) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const job = async () =>
    (await h.http<{ job: { state: string; stuck: string | null } }>(token, JOB, { id: fileId })).body.data!.job;
  const stuckInMetrics = async () =>
    metricValue(await scrape(h.url), 'herald_jobs_stuck', { queue: 'files', reason: 'NO_HEARTBEAT' });

  const running = await collect<FileUpdate>(
    h.ws(token),
    FileProgressDocument,
    { fileId, after: cursor },
    {
      field: 'fileProgress',
      timeoutMs: 60_000,
      until: (items) => items.filter((u) => u.event === 'extraction_progress').length >= 5,
    },
  );
  worker.kill('SIGSTOP');
  try {
    expect(await job()).toEqual({ state: 'ACTIVE', stuck: null });
    await waitFor(async () => (await job()).stuck === 'NO_HEARTBEAT', 30_000);
    expect((await job()).state).toBe('ACTIVE');
    expect(await stuckInMetrics()).toBe(1);
    await waitFor(async () => (await toldAdmins(h)).length > 0, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await toldAdmins(h)).toEqual([
      {
        title: 'A file job is stuck: its worker sends no heartbeat',
        level: 'WARNING',
        data: { kind: 'FILE', id: fileId, reason: 'NO_HEARTBEAT' },
      },
    ]);
  } finally {
    worker.kill('SIGCONT');
  }

  await waitFor(async () => (await job()).stuck === null, 30_000);
  const rest = await collect<FileUpdate>(
    h.ws(token),
    FileProgressDocument,
    { fileId, after: running.items.at(-1)!.cursor },
    {
      field: 'fileProgress',
      timeoutMs: 60_000,
    },
  );
  expect(rest.items.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
  expect(rest.items.map((u) => u.event)).not.toContain('attempt_interrupted');
  expect(await job()).toEqual({ state: 'COMPLETED', stuck: null });
  expect(await stuckInMetrics()).toBe(0);
}, 120_000);
