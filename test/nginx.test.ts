import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor } from './helpers/herald.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const env = { CHUNK_CHARS: '150' };
let cluster: Cluster<2, 1>;
let nginx: Nginx;

beforeAll(async () => {
  cluster = await startCluster(env, { apis: 2, workers: 1 });
  nginx = await startNginx(cluster.apiUrls.map((url) => Number(new URL(url).port)));
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await cluster?.stop();
});

it('carries graphql-ws and SSE subscriptions through deploy/nginx/nginx.conf to two API processes', async () => {
  const api = clientsFor(nginx.url);
  const token = await api.token('nina');
  const { body } = await api.http(token, StartFileProcessingDocument, { input: { name: 'n.md', content: makeDocument(20) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const variables = { fileId, after: cursor };
  const [overWs, overSse] = await Promise.all([
    collect<FileUpdate>(api.ws(token), FileProgressDocument, variables, { field: 'fileProgress' }),
    collect<FileUpdate>(api.sse(token), FileProgressDocument, variables, { field: 'fileProgress' }),
  ]);
  await api.dispose();
  for (const run of [overWs, overSse]) {
    expect(run.errors).toEqual([]);
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
    expect(run.items.at(-1)!.event).toBe('processing_completed');
  }
  expect(overSse.items).toEqual(overWs.items);
});
