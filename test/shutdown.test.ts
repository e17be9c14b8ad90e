import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const env = { CHUNK_CHARS: '100', HISTORY_LIMIT: '5000' };
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster(env, { apis: 2, workers: 1 });
}, 60_000);
afterAll(() => cluster?.stop());

function exitOf(child: Cluster['apis'][number]): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
}

it('stops a worker on SIGTERM only after its running job has finished', async () => {
  const api = clientsFor(cluster.apiUrls[1]);
  const token = await api.token('tess');
  const { body } = await api.http(token, StartFileProcessingDocument, { input: { name: 't.md', content: makeDocument(300) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const whole = collect<FileUpdate>(api.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  await collect<FileUpdate>(api.ws(token), FileProgressDocument, { fileId, after: cursor }, {
    field: 'fileProgress',
    until: (items) => items.some((u) => u.event === 'extraction_progress'),
  });
  const worker = cluster.workers[0];
  const exited = exitOf(worker);
  worker.kill('SIGTERM');
  const run = await whole;
  expect(run.items.at(-1)!.event).toBe('processing_completed');
  expect(run.items.some((u) => u.event === 'attempt_interrupted')).toBe(false);
  expect((await exited).code).toBe(0);
  await api.dispose();
});

it('closes WebSockets with 1001 (going away) on SIGTERM and exits within the grace period', async () => {
  const api = clientsFor(cluster.apiUrls[0]);
  const token = await api.token('tess');
  const client = api.ws(token, { lazy: false });
  const closed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
  await new Promise<void>((resolve) => client.on('connected', () => resolve()));
  const exited = exitOf(cluster.apis[0]);
  const sent = Date.now();
  cluster.apis[0].kill('SIGTERM');
  expect(await closed).toBe(1001);
  const { code, at } = await exited;
  expect(code).toBe(0);
  expect(at - sent).toBeLessThan(10_000);
  await api.dispose();
});
