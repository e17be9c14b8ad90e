import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileProgressDocument,
  JobDocument,
  MeDocument,
  SendNotificationDocument,
  StartFileProcessingDocument,
  type FileProgressSubscription,
} from '../src/client/generated.js';
import { createPublisher } from '../src/publisher.js';
import { encodeCursor } from '../src/updates/cursor.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, parseMetrics, scrape } from './helpers/metrics.js';
import { redisUrl } from './helpers/redis.js';
import { collect, errorCodes, readEventStream, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

/** Log lines of the API and the in-process worker, parsed. */
const logs: Array<Record<string, unknown>> = [];
let herald: Herald;
let alice: string;

beforeAll(async () => {
  herald = await startHerald(
    { WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info', CHUNK_CHARS: '200', CLASSIFY_BATCH: '4' },
    { workers: false, log: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } },
  );
  alice = await herald.token({ sub: 'alice', projects: ['apollo'] });
});
afterAll(() => herald?.stop());

/** One metric of the API's /metrics, 0 when absent. */
async function api(name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await scrape(herald.url), name, labels) ?? 0;
}

/** Runs `act` and says by how much it moved herald_errors_total{code}. */
async function errorsCounted(code: string, act: () => Promise<unknown>): Promise<number> {
  const before = await api('herald_errors_total', { code });
  await act();
  return (await api('herald_errors_total', { code })) - before;
}

describe('metrics of a job, from the worker that publishes to the subscriber that receives', () => {
  let fileId: string;
  let cursor: string;
  let updates: FileUpdate[];
  /** Updates the client got live: all but `queued`, which it got from history as it subscribed. */
  let live: number;
  /** The files queue as the API's /metrics showed it before any worker ran. */
  let queueBeforeWorkers: { waiting: number; workers: number };

  beforeAll(async () => {
    const { body } = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'notes.md', content: makeDocument(6) },
    });
    ({ fileId, cursor } = body.data!.startFileProcessing);
    // Subscribed (from before `queued`) before any worker runs: everything after `queued` comes live.
    const watching = collect<FileUpdate>(
      herald.ws(alice),
      FileProgressDocument,
      { fileId, after: cursor },
      { field: 'fileProgress' },
    );
    await waitFor(async () => (await api('herald_subscriptions', { field: 'fileProgress', transport: 'websocket' })) === 1);
    queueBeforeWorkers = {
      waiting: await api('herald_queue_jobs', { queue: 'files', state: 'waiting' }),
      workers: await api('herald_queue_workers', { queue: 'files' }),
    };
    await herald.startWorkers();
    const run = await watching;
    expect(run.errors).toEqual([]);
    expect(run.completed).toBe(true);
    updates = run.items;
    expect(updates[0]?.event).toBe('queued');
    live = updates.length - 1;
    expect(live).toBeGreaterThan(5);
    // BullMQ reports the job done once its result is stored, a moment after its last update.
    await waitFor(
      async () =>
        metricValue(await scrape(herald.workerMetricsUrl()!), 'herald_jobs_total', { queue: 'files', outcome: 'completed' }) ===
        1,
    );
  });

  it('the worker serves /healthz and /metrics: updates published, jobs and their durations by outcome', async () => {
    const url = herald.workerMetricsUrl()!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const text = await scrape(url);
    // Every update after `queued` was appended by the worker; `queued` by the API.
    expect(metricValue(text, 'herald_updates_published_total', { kind: 'file' })).toBe(live);
    expect(metricValue(text, 'herald_updates_published_total', { kind: 'query' })).toBe(0);
    expect(metricValue(text, 'herald_jobs_total', { queue: 'files', outcome: 'completed' })).toBe(1);
    expect(metricValue(text, 'herald_job_duration_seconds_count', { queue: 'files', outcome: 'completed' })).toBe(1);
    expect(metricValue(text, 'herald_job_duration_seconds_sum', { queue: 'files', outcome: 'completed' })).toBeGreaterThan(0);
    expect(metricValue(text, 'herald_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    const port = new URL(url).port;
    expect(new Set(parseMetrics(text).map((sample) => sample.labels.instance))).toEqual(new Set([`${hostname()}:${port}`]));
    expect((await fetch(`${url}/graphql`)).status).toBe(404);
    expect(metricValue(text, 'herald_redis_up', { connection: 'commands' })).toBe(1);
  });

  it("the API shows each queue's waiting jobs and the workers consuming it: work with no worker is visible", async () => {
    expect(queueBeforeWorkers).toEqual({ waiting: 1, workers: 0 });
    expect(await api('herald_queue_jobs', { queue: 'files', state: 'waiting' })).toBe(0);
    expect(await api('herald_queue_workers', { queue: 'files' })).toBeGreaterThanOrEqual(1);
    expect(await api('herald_queue_workers', { queue: 'queries' })).toBeGreaterThanOrEqual(1);
    for (const connection of ['commands', 'subscriber', 'bullmq']) expect(await api('herald_redis_up', { connection })).toBe(1);
  });

  it('the API counts what it delivered, how fast, and what it replayed', async () => {
    expect(await api('herald_updates_published_total', { kind: 'file' })).toBe(1);
    expect(await api('herald_updates_delivered_total', { kind: 'file' })).toBe(updates.length);
    expect(await api('herald_updates_live_total')).toBe(live);
    expect(await api('herald_updates_replayed_total')).toBe(1);
    // Once per live update (one stream here), never per subscriber.
    const observed = await api('herald_delivery_latency_seconds_count');
    expect(observed).toBe(live);
    expect(await api('herald_delivery_latency_seconds_bucket', { le: '+Inf' })).toBe(observed);
    expect(await api('herald_delivery_latency_seconds_sum')).toBeLessThan(observed * 5);

    const replayedBefore = await api('herald_updates_replayed_total');
    const resumed = await collect<FileUpdate>(
      herald.ws(alice),
      FileProgressDocument,
      { fileId, after: cursor },
      { field: 'fileProgress' },
    );
    expect(resumed.items.map((u) => u.seq)).toEqual(updates.map((u) => u.seq));
    expect((await api('herald_updates_replayed_total')) - replayedBefore).toBe(updates.length);
    // History is not a delivery to time: the histogram did not move.
    expect(await api('herald_delivery_latency_seconds_count')).toBe(observed);
    expect(await api('herald_updates_delivered_total', { kind: 'file' })).toBe(2 * updates.length);
    expect(await api('herald_update_fanout_count')).toBe(live);
    expect(await api('herald_update_fanout_sum')).toBe(live);

    const text = await scrape(herald.url);
    const port = new URL(herald.url).port;
    expect(new Set(parseMetrics(text).map((sample) => sample.labels.instance))).toEqual(new Set([`${hostname()}:${port}`]));
  });

  it('logs one line per job outcome, and one per WebSocket connection opened and closed', async () => {
    const done = logs.find((line) => line.msg === 'job completed');
    expect(done).toMatchObject({ queue: 'files', resourceId: fileId, attempts: 1, outcome: 'completed' });
    expect(typeof done?.jobId).toBe('string');
    expect(done?.durationMs).toBeGreaterThanOrEqual(0);
    await herald.dispose();
    await waitFor(() => logs.filter((line) => line.msg === 'websocket closed').length >= 2);
    const opened = logs.filter((line) => line.msg === 'websocket connected');
    const closed = logs.filter((line) => line.msg === 'websocket closed');
    expect(opened.map((line) => line.userId)).toEqual(['alice', 'alice']);
    expect(closed.map((line) => line.connectionId).sort()).toEqual(opened.map((line) => line.connectionId).sort());
    for (const line of closed) {
      expect(line).toMatchObject({ userId: 'alice', code: expect.any(Number), durationMs: expect.any(Number) });
    }
    expect(await api('herald_websocket_connection_duration_seconds_count')).toBe(closed.length);
  });

  it('counts resumes from a cursor and the gap notices sent', async () => {
    const resumesBefore = await api('herald_resumes_total');
    const gapsBefore = await api('herald_gaps_total');
    // A cursor of a history that no longer exists: the subscriber is told of the gap, then gets what is kept.
    const stale = await collect<FileUpdate>(
      herald.ws(alice),
      FileProgressDocument,
      { fileId, after: encodeCursor({ epoch: 'gone', seq: 3 }) },
      { field: 'fileProgress' },
    );
    expect(stale.items[0]?.event).toBe('history_gap');
    expect((await api('herald_resumes_total')) - resumesBefore).toBe(1);
    expect((await api('herald_gaps_total')) - gapsBefore).toBe(1);
    // Without a cursor, neither moves.
    await collect<FileUpdate>(herald.ws(alice), FileProgressDocument, { fileId }, { field: 'fileProgress' });
    expect((await api('herald_resumes_total')) - resumesBefore).toBe(1);
    expect((await api('herald_gaps_total')) - gapsBefore).toBe(1);
  });
});

describe('errors sent to clients, each counted once by its code', () => {
  it('counts NOT_FOUND from a query over HTTP and from a subscription over WebSocket', async () => {
    expect(await errorsCounted('NOT_FOUND', () => herald.http(alice, JobDocument, { id: 'no-such-job' }))).toBe(1);
    const subscribed = () =>
      collect(herald.ws(alice), FileProgressDocument, { fileId: 'no-such-file' }, { field: 'fileProgress' });
    expect(await errorsCounted('NOT_FOUND', subscribed)).toBe(1);
  });

  it('counts syntax and validation errors once, on either transport', async () => {
    const ws = herald.ws(alice);
    for (const query of ['{ me {', '{ nope }']) {
      expect(await errorsCounted('BAD_USER_INPUT', () => herald.http(alice, query))).toBe(1);
      expect(await errorsCounted('BAD_USER_INPUT', () => collect(ws, query, {}, { field: 'me' }))).toBe(1);
    }
  });

  it('counts a refused token', async () => {
    expect(await errorsCounted('UNAUTHENTICATED', () => herald.http('not-a-token', MeDocument))).toBe(1);
  });

  it('counts mutations refused by the rate limit, which skip the usual masking', async () => {
    const limited = await startHerald({ MUTATIONS_PER_MINUTE: '1' }, { workers: false });
    try {
      const bob = await limited.token('bob');
      const input = { target: { kind: 'USER' as const, id: 'bob' }, title: 'hello' };
      const overHttp = await Promise.all([1, 2, 3].map(() => limited.http(bob, SendNotificationDocument, { input })));
      const overWs = await collect(limited.ws(bob), SendNotificationDocument, { input }, { field: 'sendNotification' });
      const refused = [...overHttp.map((r) => r.body.errors), overWs.errors]
        .flatMap((e) => errorCodes(e))
        .filter((c) => c === 'RATE_LIMITED');
      expect(refused.length).toBeGreaterThanOrEqual(2);
      expect(metricValue(await scrape(limited.url), 'herald_errors_total', { code: 'RATE_LIMITED' })).toBe(refused.length);
    } finally {
      await limited.stop();
    }
  });
});

describe('fan-out and delivery latency per transport', () => {
  it('observes each live update once per transport, and the subscribers each message reached', async () => {
    const separate = await startHerald({}, { workers: false });
    const publisher = createPublisher({ env: { REDIS_URL: redisUrl(), KEY_PREFIX: separate.config.keyPrefix } });
    try {
      const file = await publisher.register({ kind: 'file', ownerId: 'alice' });
      const token = await separate.token({ sub: 'alice' });
      const watch = () =>
        collect<FileUpdate>(separate.ws(token), FileProgressDocument, { fileId: file.id }, { field: 'fileProgress' });
      const watchers = [watch(), watch()];
      const query = 'subscription($id: ID!) { fileProgress(fileId: $id) { seq } }';
      const sse = await readEventStream(
        `${separate.url}/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify({ id: file.id }))}`,
        { authorization: `Bearer ${token}` },
      );
      const metric = async (name: string, labels: Record<string, string> = {}) =>
        metricValue(await scrape(separate.url), name, labels) ?? 0;
      await waitFor(async () => (await metric('herald_subscriptions', { field: 'fileProgress' })) === 3);
      // Once all three have the first update, the streams are open: the next ones come live.
      await publisher.append(file, { event: 'step_1', status: 'PROCESSING', progress: 1 });
      await waitFor(async () => (await metric('herald_updates_delivered_total', { kind: 'file' })) === 3);
      const before = {
        websocket: await metric('herald_delivery_latency_seconds_count', { transport: 'websocket' }),
        sse: await metric('herald_delivery_latency_seconds_count', { transport: 'sse' }),
        count: await metric('herald_update_fanout_count'),
        sum: await metric('herald_update_fanout_sum'),
        upTo2: await metric('herald_update_fanout_bucket', { le: '2' }),
      };
      const live = 5;
      for (let step = 2; step <= live; step += 1) {
        await publisher.append(file, { event: `step_${step}`, status: 'PROCESSING', progress: step });
      }
      await publisher.append(file, { event: 'completed', status: 'COMPLETED', progress: 100 });
      for (const watched of await Promise.all(watchers))
        expect(watched.items.map((update) => update.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(await sse.nextEvents(live + 1)).toHaveLength(live + 1);
      sse.close();

      // Two WebSocket subscribers and one SSE subscriber of one stream: each update is timed once per transport.
      expect((await metric('herald_delivery_latency_seconds_count', { transport: 'websocket' })) - before.websocket).toBe(live);
      expect((await metric('herald_delivery_latency_seconds_count', { transport: 'sse' })) - before.sse).toBe(live);
      expect((await metric('herald_update_fanout_count')) - before.count).toBe(live);
      expect((await metric('herald_update_fanout_sum')) - before.sum).toBe(3 * live);
      expect((await metric('herald_update_fanout_bucket', { le: '2' })) - before.upTo2).toBe(0);
    } finally {
      await separate.stop();
      await publisher.close();
    }
  });
});
