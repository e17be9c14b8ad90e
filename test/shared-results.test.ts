import { afterAll, beforeAll, expect, it } from 'vitest';
import { MarkNotificationsReadDocument, SendNotificationDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

let herald: Herald;

beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
});
afterAll(async () => {
  await herald?.stop();
});

/** Sent byte for byte by every viewer, so a result shared by operation would reach them all. */
const NOTIFICATIONS = 'subscription { notifications { id title read event unreadCount } }';

it('gives each viewer of the same notifications operation their own read state, over graphql-ws and SSE', async () => {
  const member = (sub: string) => herald.token({ sub, projects: ['apollo'] });
  const [alice, bob] = await Promise.all([member('alice'), member('bob')]);
  const sent = await herald.http(alice, SendNotificationDocument, {
    input: { target: { kind: 'PROJECT', id: 'apollo' }, title: 'deploy' },
  });
  const id = sent.body.data!.sendNotification.id;
  await herald.http(alice, MarkNotificationsReadDocument, { ids: [id] });

  type Item = { id: string; title: string; read: boolean; event: string; unreadCount: number | null };
  const first = (client: Parameters<typeof collect>[0]) =>
    collect<Item>(client, NOTIFICATIONS, {}, { field: 'notifications', until: (items) => items.length > 0 }).then(
      (run) => run.items[0],
    );
  const seen = await Promise.all([
    first(herald.ws(alice)),
    first(herald.ws(bob)),
    first(herald.sse(alice)),
    first(herald.sse(bob)),
  ]);
  expect(seen).toEqual([
    { id, title: 'deploy', event: 'CREATED', read: true, unreadCount: null },
    { id, title: 'deploy', event: 'CREATED', read: false, unreadCount: null },
    { id, title: 'deploy', event: 'CREATED', read: true, unreadCount: null },
    { id, title: 'deploy', event: 'CREATED', read: false, unreadCount: null },
  ]);
});
