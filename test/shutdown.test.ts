import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor } from './helpers/herald.js';
import { exitOf, startCluster, type Cluster } from './helpers/processes.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const env = { CHUNK_CHARS: '100', HISTORY_LIMIT: '5000' };
let cluster: Cluster<1, 1>;
beforeAll(async () => {
  cluster = await startCluster(env, { apis: 1, workers: 1 });
}, 60_000);
afterAll(() => cluster?.stop());

it('stops a worker on SIGTERM only after its running job has finished', async () => {
  const api = clientsFor(cluster.apiUrls[0]);
  const token = await api.token('tess');
  const { body } = await api.http(token, StartFileProcessingDocument, { input: { name: 't.md', content: makeDocument(300) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const whole = collect<FileUpdate>(api.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  await collect<FileUpdate>(
    api.ws(token),
    FileProgressDocument,
    { fileId, after: cursor },
    {
      field: 'fileProgress',
      until: (items) => items.some((u) => u.event === 'extraction_progress'),
    },
  );
  const worker = cluster.workers[0];
  const exited = exitOf(worker);
  worker.kill('SIGTERM');
  const run = await whole;
  expect(run.items.at(-1)!.event).toBe('processing_completed');
  expect(run.items.some((u) => u.event === 'attempt_interrupted')).toBe(false);
  expect((await exited).code).toBe(0);
  await api.dispose();
});
