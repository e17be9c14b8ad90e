import { afterAll, expect, it } from 'vitest';
import {
  CancelJobDocument,
  FileProgressDocument,
  JobDocument,
  QueryProgressDocument,
  RemoveJobDocument,
  RetryJobDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type FileProgressSubscription,
  type QueryProgressSubscription,
} from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { fileWithoutSentences } from './helpers/jobs.js';
import { connect } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];
type QueryUpdate = QueryProgressSubscription['queryProgress'];

const redis = connect();
const started: Herald[] = [];
afterAll(async () => {
  await Promise.all(started.map((h) => h.stop()));
  redis.disconnect();
});

async function herald(env: Record<string, string>, workers: boolean) {
  const h = await startHerald(env, { workers });
  started.push(h);
  return h;
}

const seqs = (items: Array<{ seq: number }>) => items.map((u) => u.seq);

it('retries a cancelled file on the same stream: seq goes on, a subscriber resuming from its last cursor sees nothing twice', async () => {
  const h = await herald({}, false);
  const [jo, mo] = await Promise.all([h.token('jo'), h.token('mo')]);
  const { body } = await h.http(jo, StartFileProcessingDocument, {
    input: { name: 'notes.md', content: 'Herald keeps updates. Why? So nobody misses one.' },
  });
  const { fileId, cursor } = body.data!.startFileProcessing;
  await h.http(jo, CancelJobDocument, { id: fileId });
  const watch = (after: string) =>
    collect<FileUpdate>(h.ws(jo), FileProgressDocument, { fileId, after }, { field: 'fileProgress', timeoutMs: 60_000 });
  const first = await watch(cursor);
  expect(first.items.map((u) => [u.seq, u.event])).toEqual([
    [1, 'queued'],
    [2, 'cancelled'],
  ]);

  const others = await h.http(mo, RetryJobDocument, { id: fileId });
  expect(others.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const unknown = await h.http(jo, RetryJobDocument, { id: 'no-such-job' });
  expect(unknown.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

  const retried = await h.http(jo, RetryJobDocument, { id: fileId });
  expect(retried.body.errors).toBeUndefined();
  expect(retried.body.data!.retryJob.job).toMatchObject({ id: fileId, state: 'WAITING' });
  const again = await h.http(jo, RetryJobDocument, { id: fileId });
  expect(again.body.errors?.[0]).toMatchObject({
    message: 'only a failed or cancelled job can be retried; this one is WAITING',
    extensions: { code: 'BAD_USER_INPUT' },
  });

  await h.startWorkers();
  const second = await watch(first.items.at(-1)!.cursor);
  expect(second.completed).toBe(true);
  expect(second.items[0]).toMatchObject({ seq: 3, event: 'queued', status: 'QUEUED' });
  expect(second.items.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
  const all = [...first.items, ...second.items];
  expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
  // The retry's own cursor is the same position: a client that only kept it gets the same updates.
  const fromRetry = await watch(retried.body.data!.retryJob.cursor);
  expect(fromRetry.items.map((u) => u.cursor)).toEqual(second.items.map((u) => u.cursor));
  const { body: done } = await h.http(jo, JobDocument, { id: fileId });
  expect(done.data!.job!.state).toBe('COMPLETED');
}, 120_000);

it('retries a failed query with its attempts reset; its answer follows on the same stream', async () => {
  const h = await herald({ JOB_ATTEMPTS: '1' }, true);
  const jo = await h.token('jo');
  const file = await fileWithoutSentences(h, redis, jo);

  const { body: asked } = await h.http(jo, StartQueryDocument, {
    input: { question: 'What does a cache keep?', fileIds: [file.fileId] },
  });
  const { queryId, cursor } = asked.data!.startQuery;
  const watch = (after: string) =>
    collect<QueryUpdate>(h.ws(jo), QueryProgressDocument, { queryId, after }, { field: 'queryProgress', timeoutMs: 60_000 });
  const failed = await watch(cursor);
  expect(failed.items.at(-1)).toMatchObject({ event: 'query_failed', status: 'FAILED' });

  await file.restore();
  const retried = await h.http(jo, RetryJobDocument, { id: queryId });
  expect(retried.body.errors).toBeUndefined();
  const answer = await watch(failed.items.at(-1)!.cursor);
  expect(answer.items.map((u) => u.event).slice(0, 3)).toEqual(['queued', 'retrieving', 'generating']);
  expect(answer.items.at(-1)).toMatchObject({ event: 'done', status: 'COMPLETED' });
  expect(answer.items.at(-1)!.text).toContain('A cache keeps hot data close.');
  const all = [...failed.items, ...answer.items];
  expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
  const { body: done } = await h.http(jo, JobDocument, { id: queryId });
  expect(done.data!.job).toMatchObject({ state: 'COMPLETED', attemptsMade: 1, failedReason: null });
}, 120_000);

it('retries a query cancelled while it waited (no worker ever took it): its question is asked again on the same stream', async () => {
  const h = await herald({}, true);
  const jo = await h.token('jo');
  const { body } = await h.http(jo, StartFileProcessingDocument, {
    input: { name: 'cache.md', content: 'Sentences about caching. A cache keeps hot data close.' },
  });
  const file = body.data!.startFileProcessing;
  await collect(h.ws(jo), FileProgressDocument, { fileId: file.fileId, after: file.cursor }, { field: 'fileProgress' });
  await h.stopWorkers();

  const { body: asked } = await h.http(jo, StartQueryDocument, {
    input: { question: 'What does a cache keep?', fileIds: [file.fileId] },
  });
  const { queryId, cursor } = asked.data!.startQuery;
  const { body: cancelled } = await h.http(jo, CancelJobDocument, { id: queryId });
  expect(cancelled.data!.cancelJob).toMatchObject({ state: 'CANCELLED', attemptsMade: 0 });
  const watch = (after: string) =>
    collect<QueryUpdate>(h.ws(jo), QueryProgressDocument, { queryId, after }, { field: 'queryProgress', timeoutMs: 60_000 });
  const first = await watch(cursor);
  expect(first.items.map((u) => [u.seq, u.event])).toEqual([
    [1, 'queued'],
    [2, 'cancelled'],
  ]);

  const retried = await h.http(jo, RetryJobDocument, { id: queryId });
  expect(retried.body.errors).toBeUndefined();
  expect(retried.body.data!.retryJob.job).toMatchObject({ id: queryId, state: 'WAITING' });
  await h.startWorkers();
  const answer = await watch(first.items.at(-1)!.cursor);
  expect(answer.items[0]).toMatchObject({ seq: 3, event: 'queued', status: 'QUEUED' });
  expect(answer.items.at(-1)).toMatchObject({ event: 'done', status: 'COMPLETED' });
  expect(answer.items.at(-1)!.text).toContain('A cache keeps hot data close.');
  const all = [...first.items, ...answer.items];
  expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
  const { body: done } = await h.http(jo, JobDocument, { id: queryId });
  expect(done.data!.job).toMatchObject({ state: 'COMPLETED', attemptsMade: 1 });
}, 120_000);

it('removes a waiting job for an admin by cancelling it: its stream ends with CANCELLED and the job says so', async () => {
  const h = await herald({}, false);
  const [jo, admin] = await Promise.all([h.token('jo'), h.token({ sub: 'root', roles: ['admin'] })]);
  const { body } = await h.http(jo, StartFileProcessingDocument, { input: { name: 'wait.md', content: 'Nothing runs it.' } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const refused = await h.http(jo, RemoveJobDocument, { id: fileId });
  expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

  const removed = await h.http(admin, RemoveJobDocument, { id: fileId });
  expect(removed.body.errors).toBeUndefined();
  expect(removed.body.data!.removeJob).toMatchObject({ id: fileId, state: 'CANCELLED' });
  const stream = await collect<FileUpdate>(h.ws(jo), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  expect(stream.items.map((u) => [u.seq, u.event, u.status])).toEqual([
    [1, 'queued', 'QUEUED'],
    [2, 'cancelled', 'CANCELLED'],
  ]);
});
