import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, NotificationsDocument } from '../src/client/generated.js';
import { createPublisher, StreamEndedError, type Publisher } from '../src/publisher.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { redisUrl } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../', import.meta.url));

let herald: Herald;
let publisher: Publisher;
let env: Record<string, string>;
beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
  env = { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix };
  publisher = createPublisher({ env });
});
afterAll(async () => {
  await publisher?.close();
  await herald?.stop();
});

it("puts a producer's updates and notifications in front of the owner, numbered like a job's", async () => {
  const file = await publisher.register({ kind: 'file', ownerId: 'olga', name: 'from-python-port.csv' });
  const token = await herald.token('olga');
  const started = await publisher.append(file, { event: 'processing_started', status: 'PROCESSING', progress: 0 });
  const watching = collect<{ seq: number; event: string }>(
    herald.ws(token),
    FileProgressDocument,
    { fileId: file.id },
    { field: 'fileProgress' },
  );
  await publisher.append(file, { event: 'extraction_progress', status: 'PROCESSING', progress: 50, data: { rows: 10 } });
  await publisher.append(file, { event: 'processing_completed', status: 'COMPLETED', progress: 100 });
  const got = await watching;
  expect(started.seq).toBe(1);
  expect(got.completed).toBe(true);
  expect(got.items.map((u) => [u.seq, u.event])).toEqual([
    [1, 'processing_started'],
    [2, 'extraction_progress'],
    [3, 'processing_completed'],
  ]);
  await expect(publisher.append(file, { event: 'late', status: 'PROCESSING' })).rejects.toBeInstanceOf(StreamEndedError);

  // Kept for whoever is offline: a subscription opened afterwards replays it.
  await publisher.notify({ target: { kind: 'USER', id: 'olga' }, title: 'Your export is ready' });
  const inbox = await collect<{ title: string }>(
    herald.ws(token),
    NotificationsDocument,
    {},
    {
      field: 'notifications',
      until: (items) => items.some((item) => item.title === 'Your export is ready'),
    },
  );
  expect(inbox.items.at(-1)?.title).toBe('Your export is ready');
});

it('refuses ids that could not be Redis key parts', async () => {
  await expect(publisher.register({ kind: 'file', id: 'a b', ownerId: 'olga' })).rejects.toThrow(/id must be/);
  await expect(publisher.register({ kind: 'query', projectId: '../x', ownerId: 'olga' })).rejects.toThrow(/projectId must be/);
});

it('is importable as herald/publisher from the build by a plain Node service', async () => {
  await run('npm', ['run', 'build'], { cwd: root });
  const script = `
    import { createPublisher } from 'herald/publisher';
    const publisher = createPublisher();
    const file = await publisher.register({ kind: 'file', id: 'plain-node', ownerId: 'olga' });
    const entry = await publisher.append(file, { event: 'queued', status: 'QUEUED' });
    console.log(entry.seq);
    await publisher.close();
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    env: { PATH: process.env.PATH, ...env, LOG_LEVEL: 'silent' },
  });
  expect(stdout.trim()).toBe('1');
  const token = await herald.token('olga');
  const { body } = await herald.http(token, '{ recentUpdates(kind: FILE, id: "plain-node") { seq event } }');
  expect(body.data).toEqual({ recentUpdates: [{ seq: 1, event: 'queued' }] });
}, 60_000);
