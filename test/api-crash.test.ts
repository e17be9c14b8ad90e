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

it('lets the clients of an API instance killed with SIGKILL resume on another with nothing lost', async () => {
  const [doomed, survivor] = cluster.apiUrls.map((url) => clientsFor(url));
  const token = await doomed.token('kim');
  const { body } = await survivor.http(token, StartFileProcessingDocument, { input: { name: 'k.md', content: makeDocument(400) } });
  const { fileId, cursor } = body.data!.startFileProcessing;

  const before: FileUpdate[] = [];
  const cut = collect<FileUpdate>(doomed.ws(token), FileProgressDocument, { fileId, after: cursor }, {
    field: 'fileProgress',
    until: (items) => {
      before.splice(0, before.length, ...items);
      if (items.length === 50) cluster.apis[0].kill('SIGKILL');
      return false;
    },
  }).catch(() => undefined);
  await cut;
  expect(before.length).toBeGreaterThanOrEqual(50);
  expect(before.at(-1)!.status).not.toBe('COMPLETED');

  const after = await collect<FileUpdate>(survivor.ws(token), FileProgressDocument, { fileId, after: before.at(-1)!.cursor }, { field: 'fileProgress' });
  expect(after.completed).toBe(true);
  const seqs = [...before, ...after.items].map((u) => u.seq);
  expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  expect(after.items.at(-1)!.event).toBe('processing_completed');
  await survivor.dispose();
  await doomed.dispose();
});
