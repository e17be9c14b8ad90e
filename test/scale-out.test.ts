import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  FileProgressDocument,
  NotificationsDocument,
  OnlineUsersDocument,
  SendNotificationDocument,
  StartFileProcessingDocument,
  type FileProgressSubscription,
  type NotificationsSubscription,
} from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor, type HeraldClients } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { collect, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];
type Notification = NotificationsSubscription['notifications'];

const env = { CHUNK_CHARS: '150', PRESENCE_HEARTBEAT_MS: '500', PRESENCE_TTL_MS: '1500' };
let cluster: Cluster<3, 2>;
let api: [HeraldClients, HeraldClients, HeraldClients];

beforeAll(async () => {
  cluster = await startCluster(env, { apis: 3, workers: 2 });
  const [a, b, c] = cluster.apiUrls;
  api = [clientsFor(a), clientsFor(b), clientsFor(c)];
}, 60_000);

afterAll(async () => {
  for (const clients of api ?? []) await clients.dispose();
  await cluster?.stop();
});

it('delivers every update of jobs started through one instance to subscribers on the others', async () => {
  const token = await api[0].token({ sub: 'sam' });
  const started = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const { body } = await api[0].http(token, StartFileProcessingDocument, {
        input: { name: `f${i}.md`, content: makeDocument(10 + i) },
      });
      return body.data!.startFileProcessing;
    }),
  );
  const runs = await Promise.all(
    started.flatMap(({ fileId, cursor }) => [
      collect<FileUpdate>(api[1].ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' }),
      collect<FileUpdate>(api[2].sse(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' }),
    ]),
  );
  for (const run of runs) {
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
    expect(run.items.at(-1)!.event).toBe('processing_completed');
  }
});

it('reaches a user on every instance, and counts their connections across instances', async () => {
  const admin = await api[0].token({ sub: 'root', roles: ['admin'] });
  const una = await api[0].token({ sub: 'una' });
  const tabs = [api[1].ws(una), api[2].ws(una)];
  const received = tabs.map((tab) =>
    collect<Notification>(
      tab,
      NotificationsDocument,
      {},
      { field: 'notifications', until: (items) => items.some((n) => n.title === 'hello una') },
    ),
  );
  await waitFor(async () => {
    const { body } = await api[0].http(admin, OnlineUsersDocument, {});
    return body.data?.onlineUsers.find((u) => u.id === 'una')?.connections === 2;
  });
  const { body } = await api[0].http(una, SendNotificationDocument, {
    input: { target: { kind: 'USER', id: 'una' }, title: 'hello una' },
  });
  expect(body.errors).toBeUndefined();
  for (const run of await Promise.all(received)) {
    expect(run.items.at(-1)).toMatchObject({ title: 'hello una', event: 'CREATED', read: false });
  }
});
