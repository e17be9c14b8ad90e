import { afterAll, describe, expect, it } from 'vitest';
import type { TokenClaims } from '../src/auth/token.js';
import {
  ArchiveNotificationsDocument,
  DeleteNotificationsDocument,
  NotificationInboxDocument,
  NotificationPreferencesDocument,
  NotificationsDocument,
  NotificationSummaryDocument,
  SendNotificationDocument,
  SetNotificationPreferencesDocument,
  type NotificationFieldsFragment,
  type NotificationInboxQueryVariables,
  type NotificationPreferencesInput,
  type SendNotificationInput,
} from '../src/client/generated.js';
import { startHerald, type GraphQLBody, type Herald } from './helpers/herald.js';
import { monitorCommands } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

type Item = NotificationFieldsFragment;

const started: Herald[] = [];
afterAll(async () => {
  await Promise.all(started.map((h) => h.stop()));
});

/** A Herald of its own per test: global notifications of one test never reach another's users. */
async function fresh(env: Record<string, string> = {}): Promise<Herald> {
  const h = await startHerald(env, { workers: false });
  started.push(h);
  return h;
}

const ADMIN: TokenClaims = { sub: 'root', roles: ['admin'] };
const ALICE: TokenClaims = { sub: 'alice', roles: ['ops'], projects: ['p1'] };
const BOB: TokenClaims = { sub: 'bob', roles: ['ops'], projects: ['p1'] };

function dataOf<T>(body: GraphQLBody<T>): T {
  expect(body.errors).toBeUndefined();
  return body.data!;
}

async function send(h: Herald, token: string, input: SendNotificationInput): Promise<Item> {
  return dataOf((await h.http(token, SendNotificationDocument, { input })).body).sendNotification;
}

async function inbox(h: Herald, token: string, variables: NotificationInboxQueryVariables = {}) {
  return dataOf((await h.http(token, NotificationInboxDocument, variables)).body).notificationInbox;
}

/** Titles of the viewer's inbox, newest first, read page by page of `first` through the cursors it gives. */
async function inboxTitles(h: Herald, token: string, variables: NotificationInboxQueryVariables = {}): Promise<string[]> {
  const titles: string[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await inbox(h, token, { ...variables, after });
    titles.push(...page.edges.map((edge) => edge.node.title));
    if (!page.pageInfo.hasNextPage) return titles;
    after = page.pageInfo.endCursor;
  }
}

async function summary(h: Herald, token: string) {
  const data = dataOf((await h.http(token, NotificationSummaryDocument)).body);
  const byLevel = Object.fromEntries(data.notificationSummary.unreadByLevel.map(({ level, count }) => [level, count]));
  return { count: data.unreadNotificationCount, unread: data.notificationSummary.unread, byLevel };
}

async function setPreferences(h: Herald, token: string, input: NotificationPreferencesInput) {
  return (await h.http(token, SetNotificationPreferencesDocument, { input })).body;
}

/** A WebSocket subscription of the viewer's notifications, from `after`, until an item titled `last` arrives. */
function watch(h: Herald, token: string, after: string | null, last: string) {
  return collect<Item>(h.ws(token), NotificationsDocument, { after }, { field: 'notifications', until: titled(last) });
}

const titled = (title: string) => (items: Item[]) => items.some((item) => item.event === 'CREATED' && item.title === title);
const created = (items: Item[]) => items.filter((item) => item.event === 'CREATED').map((item) => item.title);

describe('muting', () => {
  it('keeps muted levels and target kinds off the live stream, the unread count and the summary; the inbox lists them only when asked', async () => {
    const h = await fresh();
    const [admin, alice, bob] = await Promise.all([h.token(ADMIN), h.token(ALICE), h.token(BOB)]);
    expect(dataOf((await h.http(alice, NotificationPreferencesDocument)).body).notificationPreferences).toEqual({
      mutedLevels: [],
      mutedTargetKinds: [],
    });
    const set = dataOf(await setPreferences(h, alice, { mutedLevels: ['INFO', 'SUCCESS', 'INFO'], mutedTargetKinds: ['ROLE'] }));
    expect(set.setNotificationPreferences).toEqual({ mutedLevels: ['INFO', 'SUCCESS'], mutedTargetKinds: ['ROLE'] });
    expect(dataOf((await h.http(alice, NotificationPreferencesDocument)).body).notificationPreferences).toEqual(
      set.setNotificationPreferences,
    );
    expect((await setPreferences(h, alice, {})).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const aliceLive = watch(h, alice, null, 'end');
    const bobLive = watch(h, bob, null, 'end');
    await send(h, admin, { target: { kind: 'USER', id: 'alice' }, title: 'info to alice', level: 'INFO' });
    await send(h, admin, { target: { kind: 'ROLE', id: 'ops' }, title: 'error to ops', level: 'ERROR' });
    await send(h, admin, { target: { kind: 'PROJECT', id: 'p1' }, title: 'warning to p1', level: 'WARNING' });
    await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'success to all', level: 'SUCCESS' });
    await send(h, admin, { target: { kind: 'USER', id: 'alice' }, title: 'error to alice', level: 'ERROR' });
    await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'end', level: 'WARNING' });

    expect(created((await aliceLive).items)).toEqual(['warning to p1', 'error to alice', 'end']);
    expect(created((await bobLive).items)).toEqual(['error to ops', 'warning to p1', 'success to all', 'end']);
    expect(await summary(h, alice)).toEqual({ count: 3, unread: 3, byLevel: { INFO: 0, SUCCESS: 0, WARNING: 2, ERROR: 1 } });
    expect((await summary(h, bob)).count).toBe(4);
    expect(await inboxTitles(h, alice, { first: 1 })).toEqual(['end', 'error to alice', 'warning to p1']);
    expect(await inboxTitles(h, alice, { first: 2, includeMuted: true })).toEqual([
      'end',
      'error to alice',
      'success to all',
      'warning to p1',
      'error to ops',
      'info to alice',
    ]);

    // A list left out stays as it was; unmuting a level counts its notifications again.
    const unmuted = dataOf(await setPreferences(h, alice, { mutedLevels: [] })).setNotificationPreferences;
    expect(unmuted).toEqual({ mutedLevels: [], mutedTargetKinds: ['ROLE'] });
    expect(await summary(h, alice)).toEqual({ count: 5, unread: 5, byLevel: { INFO: 1, SUCCESS: 1, WARNING: 2, ERROR: 1 } });
  });

  it('lists many muted notifications past the first batch: a page is full and says when more follow', async () => {
    const h = await fresh({ NOTIFY_RATE_LIMIT: '1000', MUTATIONS_PER_MINUTE: '1000' });
    const [admin, alice] = await Promise.all([h.token(ADMIN), h.token(ALICE)]);
    dataOf(await setPreferences(h, alice, { mutedLevels: ['INFO'] }));
    const toAlice = (title: string, level?: 'ERROR') => send(h, admin, { target: { kind: 'USER', id: 'alice' }, title, level });
    await toAlice('oldest', 'ERROR');
    for (let i = 0; i < 300; i++) await toAlice(`noise ${i}`);
    await toAlice('old', 'ERROR');
    for (let i = 300; i < 600; i++) await toAlice(`noise ${i}`);
    await toAlice('new', 'ERROR');
    // The page reads alice's stream in growing batches: a few reads, not one per three muted.
    const monitor = await monitorCommands();
    const page = await inbox(h, alice, { first: 2 });
    await monitor.settled();
    monitor.stop();
    const reads = monitor.commands.filter(
      ({ command, args }) =>
        command === 'evalsha' && args.some((arg) => arg.startsWith(h.config.keyPrefix) && arg.includes(':user:alice')),
    );
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.length).toBeLessThan(20);
    expect(page.edges.map((edge) => edge.node.title)).toEqual(['new', 'old']);
    expect(page.pageInfo.hasNextPage).toBe(true);
    const rest = await inbox(h, alice, { first: 2, after: page.pageInfo.endCursor });
    expect(rest.edges.map((edge) => edge.node.title)).toEqual(['oldest']);
    expect(rest.pageInfo.hasNextPage).toBe(false);
    expect(await inboxTitles(h, alice, { first: 2, includeMuted: true })).toHaveLength(603);
    expect((await summary(h, alice)).count).toBe(3);
  });
});

describe('delete and archive', () => {
  it('act for the viewer only: the others addressed still have the notification, and other tabs are told', async () => {
    const h = await fresh();
    const [admin, alice, bob] = await Promise.all([h.token(ADMIN), h.token(ALICE), h.token(BOB)]);
    const [a, b, c] = [
      await send(h, admin, { target: { kind: 'ROLE', id: 'ops' }, title: 'a' }),
      await send(h, admin, { target: { kind: 'ROLE', id: 'ops' }, title: 'b' }),
      await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'c', level: 'ERROR' }),
    ];
    const toBob = await send(h, admin, { target: { kind: 'USER', id: 'bob' }, title: 'to bob' });
    const otherTab = collect<Item>(
      h.ws(alice),
      NotificationsDocument,
      { after: c.cursor },
      {
        field: 'notifications',
        until: (items) => items.filter((item) => item.event !== 'CREATED').length === 2,
      },
    );

    const del = async (ids: string[]) =>
      dataOf((await h.http(alice, DeleteNotificationsDocument, { ids })).body).deleteNotifications;
    const archive = async (ids: string[]) =>
      dataOf((await h.http(alice, ArchiveNotificationsDocument, { ids })).body).archiveNotifications;
    expect(await del([a.id, toBob.id])).toBe(1);
    expect(await archive([b.id])).toBe(1);
    expect(await archive([a.id, b.id])).toBe(0);
    expect(await del([a.id])).toBe(0);

    const told = (await otherTab).items.filter((item) => item.event !== 'CREATED');
    expect(told.map(({ event, id, unreadCount }) => ({ event, id, unreadCount }))).toEqual([
      { event: 'DELETED', id: a.id, unreadCount: 2 },
      { event: 'ARCHIVED', id: b.id, unreadCount: 1 },
    ]);
    expect(await inboxTitles(h, alice)).toEqual(['c']);
    expect(await inboxTitles(h, alice, { archived: true })).toEqual(['b']);
    expect((await summary(h, alice)).count).toBe(1);
    expect(await inboxTitles(h, bob)).toEqual(['to bob', 'c', 'b', 'a']);
    expect((await summary(h, bob)).count).toBe(4);
    const fromStart = await watch(h, bob, null, 'to bob');
    expect(created(fromStart.items)).toEqual(['a', 'b', 'c', 'to bob']);
    expect((await h.http(alice, DeleteNotificationsDocument, { ids: ['nope'] })).body.errors?.[0]?.extensions?.code).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('keep resuming exact: from a cursor taken before or after the deletes, every kept notification once, in order', async () => {
    const h = await fresh();
    const [admin, alice] = await Promise.all([h.token(ADMIN), h.token(ALICE)]);
    const titles = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
    const first = watch(h, alice, null, 'n7');
    for (const [i, title] of titles.entries()) {
      await send(h, admin, { target: i % 2 === 0 ? { kind: 'USER', id: 'alice' } : { kind: 'GLOBAL' }, title });
    }
    const seen = (await first).items;
    const byTitle = (title: string) => seen.find((item) => item.title === title)!;
    const n1Cursor = byTitle('n1').cursor;

    dataOf((await h.http(alice, DeleteNotificationsDocument, { ids: [byTitle('n2').id, byTitle('n4').id] })).body);
    dataOf((await h.http(alice, ArchiveNotificationsDocument, { ids: [byTitle('n5').id] })).body);
    await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'end' });

    const resumed = (await watch(h, alice, n1Cursor, 'end')).items;
    expect(created(resumed)).toEqual(['n3', 'n6', 'n7', 'end']);
    expect(resumed.filter((item) => item.event !== 'CREATED').map((item) => item.event)).toEqual([
      'DELETED',
      'DELETED',
      'ARCHIVED',
    ]);
    const fromN3 = resumed.find((item) => item.title === 'n3')!.cursor;
    expect(created((await watch(h, alice, fromN3, 'end')).items)).toEqual(['n6', 'n7', 'end']);
    expect(await inboxTitles(h, alice, { first: 2 })).toEqual(['end', 'n7', 'n6', 'n3', 'n1']);
  });
});

describe('sending rate', () => {
  it('refuses a sender over NOTIFY_RATE_LIMIT over every instance with RATE_LIMITED, and lets them send again after the window', async () => {
    const windowMs = 1_500;
    const a = await fresh({ NOTIFY_RATE_LIMIT: '3', NOTIFY_RATE_WINDOW_MS: String(windowMs) });
    const b = await fresh({ NOTIFY_RATE_LIMIT: '3', NOTIFY_RATE_WINDOW_MS: String(windowMs), KEY_PREFIX: a.config.keyPrefix });
    const [admin, alice] = await Promise.all([a.token(ADMIN), a.token(ALICE)]);
    const input = (title: string): SendNotificationInput => ({ target: { kind: 'USER', id: 'bob' }, title });
    const begun = Date.now();
    await send(a, alice, input('1'));
    await send(b, alice, input('2'));
    await send(a, alice, input('3'));
    const refused = await b.http(alice, SendNotificationDocument, { input: input('4') });
    expect(Date.now() - begun).toBeLessThan(windowMs);
    expect(refused.status).toBe(429);
    const extensions = refused.body.errors?.[0]?.extensions as Record<string, unknown> | undefined;
    expect(extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'notifications_per_window' });
    expect([1, 2]).toContain(extensions?.retryAfterSeconds);
    // Refused sends are not stored, and another sender has a count of their own; admins are counted too.
    for (const title of ['a1', 'a2', 'a3']) await send(b, admin, input(title));
    expect((await a.http(admin, SendNotificationDocument, { input: input('a4') })).body.errors?.[0]?.extensions?.code).toBe(
      'RATE_LIMITED',
    );

    await new Promise((resolve) => setTimeout(resolve, windowMs + 100));
    await send(a, alice, input('5'));
    const bob = await a.token(BOB);
    expect(await inboxTitles(a, bob)).toEqual(['5', 'a3', 'a2', 'a1', '3', '2', '1']);
  });
});
