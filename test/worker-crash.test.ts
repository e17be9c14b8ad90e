import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { redisUrl } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const children: Array<ReturnType<typeof spawnEntry>> = [];
let herald: Herald | undefined;
afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
  await herald?.stop();
});

it('hands the job of a worker killed with SIGKILL to another worker, and the stream says so and ends', async () => {
  const workerEnv = { CHUNK_CHARS: '100', CLASSIFY_BATCH: '500', HISTORY_LIMIT: '10000', WORKER_LOCK_MS: '4000', WORKER_STALLED_INTERVAL_MS: '1000' };
  herald = await startHerald(workerEnv, { workers: false });
  const env = { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix, ...workerEnv };
  const doomed = spawnEntry('src/worker.ts', env);
  children.push(doomed);
  await waitForOutput(doomed, 'worker ready');

  const token = await herald.token('wes');
  const { body } = await herald.http(token, StartFileProcessingDocument, { input: { name: 'long.md', content: makeDocument(500) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const whole = collect<FileUpdate>(herald.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress', timeoutMs: 30_000 });
  await collect<FileUpdate>(herald.ws(token), FileProgressDocument, { fileId, after: cursor }, {
    field: 'fileProgress',
    until: (items) => items.filter((u) => u.event === 'extraction_progress').length >= 20,
  });
  doomed.kill('SIGKILL');
  const rescuer = spawnEntry('src/worker.ts', env);
  children.push(rescuer);

  const run = await whole;
  expect(run.completed).toBe(true);
  const events = run.items.map((u) => u.event);
  expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
  const interrupted = events.indexOf('attempt_interrupted');
  expect(interrupted).toBeGreaterThan(2);
  expect(run.items[interrupted]).toMatchObject({ status: 'QUEUED' });
  expect(events[interrupted + 1]).toBe('processing_started');
  expect(events.filter((e) => e === 'processing_started')).toHaveLength(2);
  expect(events.at(-1)).toBe('processing_completed');
}, 60_000);
