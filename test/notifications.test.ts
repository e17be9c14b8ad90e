import { afterAll, describe, expect, it } from 'vitest';
import type { TokenClaims } from '../src/auth/token.js';
import { encodeNotificationCursor } from '../src/notifications/cursor.js';
import { audienceOf } from '../src/notifications/keys.js';
import { createNotificationStore, parseNotificationId, type NotificationStore } from '../src/notifications/store.js';
import { openNotificationStream, type NotificationStreamEvent } from '../src/notifications/stream.js';
import type { NotificationEntry } from '../src/notifications/types.js';
import { encodeCursor } from '../src/updates/cursor.js';
import type { ChannelListener } from '../src/redis.js';
import { createUpdateHub, type UpdateHub } from '../src/updates/hub.js';
import { nth } from './helpers/elements.js';
import { startHerald, type GraphQLBody, type Herald } from './helpers/herald.js';
import { expectResumed, placeOf } from './helpers/notifications.js';
import { connect, monitorCommands, uniquePrefix } from './helpers/redis.js';
import { collect, waitFor } from './helpers/streams.js';

interface Item {
  id: string;
  cursor: string;
  event: 'CREATED' | 'READ' | 'READ_ALL' | 'HISTORY_GAP';
  read: boolean;
  unreadCount: number | null;
  title: string;
  body: string | null;
  level: string;
  data: unknown;
  createdAt: string;
  target: { kind: string; id: string | null };
  gap: { reason: string; resumesAfter: number } | null;
}

interface Input {
  target: { kind: string; id?: string | null };
  title: string;
  body?: string | null;
  level?: string;
  data?: unknown;
}

const FIELDS = 'id cursor event read unreadCount title body level data createdAt target { kind id } gap { reason resumesAfter }';
const SEND = `mutation($input: SendNotificationInput!) { sendNotification(input: $input) { ${FIELDS} } }`;
const WATCH = `subscription($after: String) { notifications(after: $after) { ${FIELDS} } }`;
const INBOX = `query($first: Int, $after: String, $unreadOnly: Boolean) {
  notificationInbox(first: $first, after: $after, unreadOnly: $unreadOnly) {
    edges { cursor node { ${FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const COUNT = '{ unreadNotificationCount }';
const SUMMARY = '{ notificationSummary { unread unreadByLevel { level count } } }';
const MARK = 'mutation($ids: [ID!], $all: Boolean) { markNotificationsRead(ids: $ids, all: $all) }';

interface Inbox {
  edges: Array<{ cursor: string; node: Item }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const redis = connect();
const started: Herald[] = [];
afterAll(async () => {
  await Promise.all(started.map((h) => h.stop()));
  redis.disconnect();
});

/**
 * A Herald of its own per test: global notifications of one test never reach another's users. The
 * senders here race hundreds of sends: the per-sender rate is tested in notification-preferences.
 */
async function fresh(env: Record<string, string> = {}, workers = false): Promise<Herald> {
  const h = await startHerald({ NOTIFY_RATE_LIMIT: '100000', ...env }, { workers });
  started.push(h);
  return h;
}

const ADMIN: TokenClaims = { sub: 'root', roles: ['admin'] };

function codeOf(body: GraphQLBody<unknown>): string | undefined {
  return body.errors?.[0]?.extensions?.code;
}

function argumentOf(body: GraphQLBody<unknown>): unknown {
  return (body.errors?.[0]?.extensions as Record<string, unknown> | undefined)?.argument;
}

async function sendRaw(h: Herald, token: string, input: Input) {
  return (await h.http<{ sendNotification: Item }>(token, SEND, { input })).body;
}

async function send(h: Herald, token: string, input: Input): Promise<Item> {
  const body = await sendRaw(h, token, input);
  expect(body.errors).toBeUndefined();
  return body.data!.sendNotification;
}

async function query<T>(h: Herald, token: string, document: string, variables: Record<string, unknown> = {}): Promise<T> {
  const { body } = await h.http<T>(token, document, variables);
  expect(body.errors).toBeUndefined();
  return body.data!;
}

async function inbox(h: Herald, token: string, variables: Record<string, unknown>): Promise<Inbox> {
  return (await query<{ notificationInbox: Inbox }>(h, token, INBOX, variables)).notificationInbox;
}

async function mark(h: Herald, token: string, variables: { ids?: string[]; all?: boolean }): Promise<number> {
  return (await query<{ markNotificationsRead: number }>(h, token, MARK, variables)).markNotificationsRead;
}

function watch(
  h: Herald,
  token: string,
  transport: 'ws' | 'sse',
  after: string | null,
  until: (items: Item[]) => boolean,
  timeoutMs = 20_000,
) {
  const client = transport === 'ws' ? h.ws(token) : h.sse(token);
  return collect<Item>(client, WATCH, { after }, { field: 'notifications', until, timeoutMs });
}

const titled = (title: string) => (items: Item[]) => items.some((item) => item.title === title);

describe('delivery', () => {
  it('reaches exactly the viewers a user, role, project or global target addresses, in the order sent', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const viewers: Record<string, TokenClaims> = {
      alice: { sub: 'alice', roles: ['ops'], projects: ['p1'] },
      bob: { sub: 'bob', roles: ['ops', 'not a valid id!'] },
      carol: { sub: 'carol', projects: ['p1'] },
      dave: { sub: 'dave', projects: ['p2'] },
    };
    const start = await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'start' });
    const runs = await Promise.all(
      Object.entries(viewers).map(async ([name, claims], i) => {
        const token = await h.token(claims);
        return [name, claims, watch(h, token, i % 2 === 0 ? 'ws' : 'sse', start.cursor, titled('end'))] as const;
      }),
    );
    await send(h, admin, { target: { kind: 'USER', id: 'alice' }, title: 'to alice' });
    await send(h, admin, { target: { kind: 'ROLE', id: 'ops' }, title: 'to ops' });
    await send(h, admin, { target: { kind: 'PROJECT', id: 'p1' }, title: 'to p1' });
    await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'to all', level: 'WARNING' });
    await send(h, admin, { target: { kind: 'USER', id: 'bob' }, title: 'to bob' });
    await send(h, admin, { target: { kind: 'ROLE', id: 'nobody-has-this' }, title: 'to a role nobody has' });
    await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'end' });

    const expected: Record<string, string[]> = {
      alice: ['to alice', 'to ops', 'to p1', 'to all', 'end'],
      bob: ['to ops', 'to all', 'to bob', 'end'],
      carol: ['to p1', 'to all', 'end'],
      dave: ['to all', 'end'],
    };
    for (const [name, claims, run] of runs) {
      const { items, errors } = await run;
      expect(errors).toEqual([]);
      expect(
        items.map((item) => item.title),
        name,
      ).toEqual(expected[name] ?? []);
      expect(items.every((item) => item.event === 'CREATED' && item.read === false)).toBe(true);
      const token = await h.token(claims);
      const box = await inbox(h, token, { first: 100 });
      expect(box.edges.map((edge) => edge.node.title)).toEqual(['start', ...(expected[name] ?? [])].reverse());
      expect(box.edges.map((edge) => edge.cursor)).toEqual(box.edges.map((edge) => edge.node.cursor));
    }
    const alice = nth((await nth(runs, 0)[2]).items, 0);
    expect(alice.target).toEqual({ kind: 'USER', id: 'alice' });
    const all = (await nth(runs, 3)[2]).items[0];
    expect(all).toMatchObject({
      title: 'to all',
      level: 'WARNING',
      target: { kind: 'GLOBAL', id: null },
      body: null,
      data: null,
    });
  });

  it('reaches every tab of a user, over WebSocket and SSE, with the same ids and cursors', async () => {
    const h = await fresh();
    const token = await h.token('tabby');
    const other = await h.token('someone');
    const first = await send(h, other, { target: { kind: 'USER', id: 'tabby' }, title: 'hello' });
    const tabs = [
      watch(h, token, 'ws', first.cursor, titled('three')),
      watch(h, token, 'ws', first.cursor, titled('three')),
      watch(h, token, 'sse', first.cursor, titled('three')),
    ];
    for (const title of ['one', 'two', 'three']) {
      await send(h, other, { target: { kind: 'USER', id: 'tabby' }, title, data: { n: title } });
    }
    const results = await Promise.all(tabs);
    for (const { items } of results) {
      expect(items.map((item) => item.title)).toEqual(['one', 'two', 'three']);
      expect(items.map(({ id, cursor, data }) => ({ id, cursor, data }))).toEqual(
        nth(results, 0).items.map(({ id, cursor, data }) => ({ id, cursor, data })),
      );
    }
  });

  it('replays the last REPLAY_ON_CONNECT items without a cursor, then goes on live', async () => {
    const h = await fresh({ REPLAY_ON_CONNECT: '3' });
    const admin = await h.token(ADMIN);
    const token = await h.token({ sub: 'rae', roles: ['crew'] });
    for (let i = 1; i <= 5; i += 1) {
      const target = i % 2 === 0 ? { kind: 'ROLE', id: 'crew' } : { kind: 'USER', id: 'rae' };
      await send(h, admin, { target, title: `old ${i}` });
    }
    let sending: Promise<Item> | undefined;
    const run = watch(h, token, 'ws', null, (items) => {
      if (items.length === 3) sending ??= send(h, admin, { target: { kind: 'GLOBAL' }, title: 'new' });
      return titled('new')(items);
    });
    expect((await run).items.map((item) => item.title)).toEqual(['old 3', 'old 4', 'old 5', 'new']);
    await sending;
  });

  it('resumes from the cursor of any item while many are sent to each target at once: each once, each target in order', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const claims: TokenClaims = { sub: 'vic', roles: ['r1', 'r2'], projects: ['q1', 'q2'] };
    const token = await h.token(claims);
    const sources = [...audienceOf({ id: 'vic', roles: ['r1', 'r2'], projects: ['q1', 'q2'] }).targets, 'receipts:vic'];
    const targets = [
      { kind: 'USER', id: 'vic' },
      { kind: 'ROLE', id: 'r1' },
      { kind: 'ROLE', id: 'r2' },
      { kind: 'PROJECT', id: 'q1' },
      { kind: 'PROJECT', id: 'q2' },
      { kind: 'GLOBAL', id: null },
      { kind: 'USER', id: 'other' },
      { kind: 'ROLE', id: 'r3' },
      { kind: 'PROJECT', id: 'q3' },
    ];
    const start = await send(h, admin, { target: { kind: 'USER', id: 'vic' }, title: 'start' });
    // The whole stream, from the start; its items' cursors, taken as they arrive, are where the others resume.
    const seen: Item[] = [];
    const whole = watch(
      h,
      token,
      'ws',
      start.cursor,
      (items) => {
        seen.splice(0, seen.length, ...items);
        return titled('end')(items);
      },
      90_000,
    );
    const sent: Item[] = [start];
    const resumers: Array<Promise<{ from: string; got: Item[] }>> = [];
    const sending = (async () => {
      for (let batch = 0; batch < 16; batch += 1) {
        const items = await Promise.all(
          Array.from({ length: 25 }, (_, i) =>
            send(h, admin, { target: nth(targets, (batch * 7 + i * 5) % targets.length), title: `n ${batch}.${i}` }),
          ),
        );
        sent.push(...items);
      }
    })();
    for (let i = 0; i < 40; i += 1) {
      await new Promise((r) => setTimeout(r, Math.random() * 25));
      const pool = i % 4 === 0 || seen.length === 0 ? sent : seen;
      const from = nth(pool, Math.floor(Math.random() * pool.length)).cursor;
      const run = watch(h, token, i % 2 === 0 ? 'ws' : 'sse', from, titled('end'), 90_000);
      resumers.push(run.then((r) => ({ from, got: r.items })));
    }
    await sending;
    sent.push(await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'end' }));

    expectResumed(start.cursor, (await whole).items, sources, sent);
    const results = await Promise.all(resumers);
    expect(results.filter((r) => r.got.length > 1).length).toBeGreaterThan(20);
    for (const { from, got } of results) expectResumed(from, got, sources, sent);

    // With nothing sent meanwhile, a resume replays from history: by stored time, then target, then seq,
    // which is the inbox's order reversed.
    const replayed = await watch(h, token, 'sse', start.cursor, titled('end'), 30_000);
    const pages: Inbox[] = [await inbox(h, token, { first: 100 })];
    while (pages.at(-1)!.pageInfo.hasNextPage) {
      pages.push(await inbox(h, token, { first: 100, after: pages.at(-1)!.pageInfo.endCursor }));
    }
    const newestFirst = pages.flatMap((page) => page.edges.map((edge) => edge.node.id));
    expect(replayed.items.map((item) => item.id)).toEqual(newestFirst.reverse().slice(1));
  });

  it('says in-band when items after the cursor passed retention, or come from a lost history', async () => {
    const h = await fresh({ NOTIFICATION_RETENTION_COUNT: '3' });
    const token = await h.token('gus');
    const sender = await h.token('sender');
    const sent: Item[] = [];
    for (let i = 1; i <= 6; i += 1) sent.push(await send(h, sender, { target: { kind: 'USER', id: 'gus' }, title: `m${i}` }));
    const trimmed = await watch(h, token, 'ws', nth(sent, 0).cursor, titled('m6'));
    expect(trimmed.items[0]).toMatchObject({ event: 'HISTORY_GAP', level: 'WARNING', read: true, gap: { reason: 'TRIMMED' } });
    expect(trimmed.items.slice(1).map((item) => item.title)).toEqual(['m4', 'm5', 'm6']);

    const { source, epoch, seq } = placeOf(nth(sent, 5));
    const lost = encodeNotificationCursor({ sources: new Map([[source, { epoch: 'deadbeef', seq }]]), pivot: null });
    const restarted = await watch(h, token, 'sse', lost, titled('m6'));
    expect(restarted.items[0]).toMatchObject({ event: 'HISTORY_GAP', gap: { reason: 'EPOCH_CHANGED', resumesAfter: 0 } });
    expect(restarted.items.slice(1).map((item) => item.title)).toEqual(['m4', 'm5', 'm6']);

    const ahead = encodeNotificationCursor({ sources: new Map([[source, { epoch, seq: 99_999 }]]), pivot: null });
    const refused = await collect<Item>(h.ws(token), WATCH, { after: ahead }, { field: 'notifications' });
    expect(JSON.stringify(refused.errors)).toContain('BAD_USER_INPUT');

    const former = encodeCursor({ epoch, seq: 3 });
    const old = await collect<Item>(h.ws(token), WATCH, { after: former }, { field: 'notifications' });
    expect(JSON.stringify(old.errors)).toContain('BAD_USER_INPUT');
    expect(JSON.stringify(old.errors)).toContain('former single notification sequence');
  });
});

describe('the inbox and read state', () => {
  it('keeps what an offline user missed: inbox, counts, summary, marking read, and their other tab is told', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const member = await h.token({ sub: 'mia', projects: ['atlas'] });
    const claims: TokenClaims = { sub: 'olga', roles: ['support'], projects: ['atlas'] };
    const token = await h.token(claims);
    const plan: Input[] = [
      { target: { kind: 'USER', id: 'olga' }, title: 'welcome', level: 'INFO' },
      { target: { kind: 'ROLE', id: 'support' }, title: 'queue is long', level: 'WARNING' },
      { target: { kind: 'PROJECT', id: 'atlas' }, title: 'build green', level: 'SUCCESS' },
      { target: { kind: 'GLOBAL' }, title: 'maintenance tonight', level: 'WARNING', body: 'From 22:00 UTC.' },
      { target: { kind: 'USER', id: 'olga' }, title: 'disk full', level: 'ERROR', data: { host: 'db1' } },
      { target: { kind: 'USER', id: 'someone-else' }, title: 'not for olga' },
    ];
    const sent: Item[] = [];
    for (const input of plan) sent.push(await send(h, input.target.kind === 'PROJECT' ? member : admin, input));
    const mine = sent.slice(0, 5);

    expect(await query(h, token, COUNT)).toEqual({ unreadNotificationCount: 5 });
    expect(await query(h, token, SUMMARY)).toEqual({
      notificationSummary: {
        unread: 5,
        unreadByLevel: [
          { level: 'INFO', count: 1 },
          { level: 'SUCCESS', count: 1 },
          { level: 'WARNING', count: 2 },
          { level: 'ERROR', count: 1 },
        ],
      },
    });

    const pages: Inbox[] = [await inbox(h, token, { first: 2 })];
    while (pages.at(-1)!.pageInfo.hasNextPage)
      pages.push(await inbox(h, token, { first: 2, after: pages.at(-1)!.pageInfo.endCursor }));
    expect(pages.map((page) => page.edges.length)).toEqual([2, 2, 1]);
    const listed = pages.flatMap((page) => page.edges.map((edge) => edge.node));
    expect(listed.map((item) => item.id)).toEqual(mine.map((item) => item.id).reverse());
    expect(listed.every((item) => !item.read && item.event === 'CREATED')).toBe(true);
    expect(listed[0]).toMatchObject({
      title: 'disk full',
      level: 'ERROR',
      data: { host: 'db1' },
      target: { kind: 'USER', id: 'olga' },
    });
    expect(listed[1]).toMatchObject({ body: 'From 22:00 UTC.', target: { kind: 'GLOBAL', id: null } });

    // Resuming after the newest item of the inbox: nothing but what comes next.
    const otherTab = watch(h, token, 'ws', nth(listed, 0).cursor, (items) => items.some((item) => item.event === 'READ_ALL'));
    const [second, fourth] = [nth(mine, 1).id, nth(mine, 3).id];
    expect(await mark(h, token, { ids: [second, fourth, second] })).toBe(2);
    expect(await mark(h, token, { ids: [second, fourth] })).toBe(0);
    expect(await mark(h, token, { ids: [nth(sent, 5).id] })).toBe(0);
    expect(await query(h, token, COUNT)).toEqual({ unreadNotificationCount: 3 });
    const summary = await query<{ notificationSummary: { unreadByLevel: Array<{ level: string; count: number }> } }>(
      h,
      token,
      SUMMARY,
    );
    expect(summary.notificationSummary.unreadByLevel.find((c) => c.level === 'WARNING')!.count).toBe(0);

    const all = await inbox(h, token, { first: 10 });
    expect(all.edges.map((edge) => [edge.node.title, edge.node.read])).toEqual([
      ['disk full', false],
      ['maintenance tonight', true],
      ['build green', false],
      ['queue is long', true],
      ['welcome', false],
    ]);
    const unread = await inbox(h, token, { first: 2, unreadOnly: true });
    expect(unread.edges.map((edge) => edge.node.title)).toEqual(['disk full', 'build green']);
    expect(unread.pageInfo.hasNextPage).toBe(true);
    const rest = await inbox(h, token, { first: 2, unreadOnly: true, after: unread.pageInfo.endCursor });
    expect(rest.edges.map((edge) => edge.node.title)).toEqual(['welcome']);
    expect(rest.pageInfo.hasNextPage).toBe(false);

    expect(await mark(h, token, { all: true })).toBe(3);
    expect(await mark(h, token, { all: true })).toBe(0);
    expect(await query(h, token, COUNT)).toEqual({ unreadNotificationCount: 0 });
    expect(await query(h, token, SUMMARY)).toMatchObject({ notificationSummary: { unread: 0 } });

    const told = (await otherTab).items;
    expect(told.map((item) => [item.event, item.id, item.read, item.unreadCount])).toEqual([
      ['READ', second, true, 3],
      ['READ', fourth, true, 3],
      ['READ_ALL', nth(mine, 4).id, true, 0],
    ]);
    const box = await inbox(h, token, { first: 10 });
    expect(box.edges).toHaveLength(5);
    expect(box.edges.every((edge) => edge.node.read && edge.node.event === 'CREATED')).toBe(true);

    await send(h, admin, { target: { kind: 'ROLE', id: 'support' }, title: 'one more' });
    expect(await query(h, token, COUNT)).toEqual({ unreadNotificationCount: 1 });
    expect(nth((await inbox(h, token, { first: 1 })).edges, 0).node).toMatchObject({ title: 'one more', read: false });
    expect(await query(h, member, COUNT)).toEqual({ unreadNotificationCount: 2 });
  });

  it('keeps read state per user for notifications many users share', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const [ann, ben] = await Promise.all([h.token('ann'), h.token('ben')]);
    const shared = await send(h, admin, { target: { kind: 'GLOBAL' }, title: 'for everyone' });
    expect(await mark(h, ann, { ids: [shared.id] })).toBe(1);
    expect(await query(h, ann, COUNT)).toEqual({ unreadNotificationCount: 0 });
    expect(await query(h, ben, COUNT)).toEqual({ unreadNotificationCount: 1 });
    expect(nth((await inbox(h, ben, {})).edges, 0).node.read).toBe(false);
    expect(nth((await inbox(h, ann, {})).edges, 0).node.read).toBe(true);
  });
});

describe('who may send what', () => {
  it('lets anyone send to a user, members to their project, admins to anything; everything else is FORBIDDEN', async () => {
    const h = await fresh();
    const plain = await h.token({ sub: 'pat', projects: ['mine'] });
    const admin = await h.token(ADMIN);
    const note = (target: Input['target']) => ({ target, title: 'hi' });

    expect((await sendRaw(h, plain, note({ kind: 'USER', id: 'anyone' }))).errors).toBeUndefined();
    expect((await sendRaw(h, plain, note({ kind: 'PROJECT', id: 'mine' }))).errors).toBeUndefined();
    for (const target of [{ kind: 'PROJECT', id: 'theirs' }, { kind: 'ROLE', id: 'admin' }, { kind: 'GLOBAL' }]) {
      expect(codeOf(await sendRaw(h, plain, note(target))), JSON.stringify(target)).toBe('FORBIDDEN');
    }
    for (const target of [{ kind: 'PROJECT', id: 'theirs' }, { kind: 'ROLE', id: 'ops' }, { kind: 'GLOBAL' }]) {
      expect((await sendRaw(h, admin, note(target))).errors, JSON.stringify(target)).toBeUndefined();
    }
    const refused = await h.http(plain, '{ onlineUsers { id connections } }');
    expect(codeOf(refused.body)).toBe('FORBIDDEN');
    expect((await h.http(null, COUNT)).status).toBe(401);
  });

  it('refuses invalid input with BAD_USER_INPUT naming the argument', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const user = { kind: 'USER', id: 'u1' };
    const cases: Array<[Input, string]> = [
      [{ target: user, title: '   ' }, 'input.title'],
      [{ target: user, title: 'x'.repeat(201) }, 'input.title'],
      [{ target: user, title: 'ok', body: 'b'.repeat(10_001) }, 'input.body'],
      [{ target: user, title: 'ok', data: { blob: 'd'.repeat(16 * 1024) } }, 'input.data'],
      [{ target: { kind: 'GLOBAL', id: 'x' }, title: 'ok' }, 'input.target.id'],
      [{ target: { kind: 'USER' }, title: 'ok' }, 'input.target.id'],
      [{ target: { kind: 'ROLE', id: 'has spaces' }, title: 'ok' }, 'input.target.id'],
    ];
    for (const [input, argument] of cases) {
      const body = await sendRaw(h, admin, input);
      expect(codeOf(body), argument).toBe('BAD_USER_INPUT');
      expect(argumentOf(body)).toBe(argument);
    }
    const fine = await send(h, admin, { target: user, title: `  ${'t'.repeat(200)}  `, body: 'b'.repeat(10_000) });
    expect(fine.title).toHaveLength(200);
    expect(fine.level).toBe('INFO');
    expect(codeOf(await sendRaw(h, admin, { target: { kind: 'SOMEONE', id: 'x' }, title: 'ok' }))).toBe('BAD_USER_INPUT');

    const badReads: Array<[string, Record<string, unknown>, string]> = [
      [INBOX, { first: 0 }, 'first'],
      [INBOX, { first: 101 }, 'first'],
      [INBOX, { after: 'not-a-cursor' }, 'after'],
      [MARK, {}, 'ids'],
      [MARK, { ids: [fine.id], all: true }, 'all'],
      [MARK, { all: false }, 'all'],
      [MARK, { ids: ['nope'] }, 'ids'],
      [MARK, { ids: Array.from({ length: 1_001 }, () => fine.id) }, 'ids'],
    ];
    for (const [document, variables, argument] of badReads) {
      const { body } = await h.http(admin, document, variables);
      expect(codeOf(body), JSON.stringify(variables).slice(0, 80)).toBe('BAD_USER_INPUT');
      expect(argumentOf(body)).toBe(argument);
    }
    const lost = Buffer.from('deadbeef:1').toString('base64url');
    expect(argumentOf((await h.http(admin, INBOX, { after: lost })).body)).toBe('after');
  });
});

describe('jobs', () => {
  it('tells the owner when their file is processed, and when a query fails for good', async () => {
    const h = await fresh({ JOB_ATTEMPTS: '1' }, true);
    const token = await h.token('jo');
    const hello = await send(h, await h.token('x'), { target: { kind: 'USER', id: 'jo' }, title: 'hello' });
    const run = watch(h, token, 'ws', hello.cursor, (items) => items.length === 2, 30_000);
    const { body } = await h.http<{ startFileProcessing: { fileId: string } }>(
      token,
      'mutation($input: StartFileProcessingInput!) { startFileProcessing(input: $input) { fileId } }',
      { input: { name: 'report.md', content: 'Herald sends notifications. It keeps an inbox.' } },
    );
    const { fileId } = body.data!.startFileProcessing;
    await waitFor(async () => (await inbox(h, token, {})).edges.length === 2, 20_000);
    await redis.del(`${h.config.keyPrefix}file_sentences:{${fileId}}`);
    const started = await h.http<{ startQuery: { queryId: string } }>(
      token,
      'mutation($input: StartQueryInput!) { startQuery(input: $input) { queryId } }',
      { input: { question: 'What does Herald keep?', fileIds: [fileId] } },
    );
    const { queryId } = started.body.data!.startQuery;
    const [done, failed] = (await run).items;
    expect(done).toMatchObject({
      event: 'CREATED',
      level: 'SUCCESS',
      title: 'Processing finished: report.md',
      target: { kind: 'USER', id: 'jo' },
      data: { kind: 'FILE', id: fileId },
    });
    expect(failed).toMatchObject({
      level: 'ERROR',
      title: 'Answering failed: What does Herald keep?',
      body: `file ${fileId} is not processed yet`,
      data: { kind: 'QUERY', id: queryId },
    });
    expect(await query(h, token, COUNT)).toEqual({ unreadNotificationCount: 3 });
  });
});

describe('the merged stream', () => {
  const subscriber = connect();
  const hub = createUpdateHub(subscriber);
  afterAll(() => subscriber.disconnect());

  const viewer = { id: 'sam', roles: ['r'], projects: ['p'] };
  const targets = [
    { kind: 'USER' as const, id: 'sam' },
    { kind: 'ROLE' as const, id: 'r' },
    { kind: 'PROJECT' as const, id: 'p' },
    { kind: 'GLOBAL' as const, id: null },
  ] as const;

  function newStore(options: { retentionDays?: number } = {}): NotificationStore {
    return createNotificationStore(redis, { keyPrefix: uniquePrefix(), retentionCount: 1_000, retentionDays: 30, ...options });
  }

  async function sendMany(store: NotificationStore, count: number): Promise<NotificationEntry[]> {
    const sent: NotificationEntry[] = [];
    for (let i = 0; i < count; i += 1) sent.push(await store.send({ target: nth(targets, i % targets.length), title: `t${i}` }));
    return sent;
  }

  async function take(stream: AsyncIterableIterator<NotificationStreamEvent>, count: number): Promise<NotificationStreamEvent[]> {
    const events: NotificationStreamEvent[] = [];
    while (events.length < count) events.push((await stream.next()).value);
    await stream.return!();
    return events;
  }

  const titles = (events: NotificationStreamEvent[]) =>
    events.map((event) => (event.type === 'entry' ? event.entry.notification.title : event.gap.reason));

  it('refills from its source a live entry whose seq skips ahead, as when pub/sub dropped one: late, never lost', async () => {
    const store = newStore();
    let dropped = 0;
    // One lossy stand-in per listener, whatever channels it listens to, so that it leaves them too.
    const standIns = new Map<ChannelListener, ChannelListener>();
    const lossyFor = (listener: ChannelListener) => {
      const standIn = standIns.get(listener) ?? {
        onMessage(message: unknown) {
          const entry = message as NotificationEntry;
          if (entry.notification.title === 't1' || entry.notification.title === 't5') dropped += 1;
          else listener.onMessage(message);
        },
      };
      standIns.set(listener, standIn);
      return standIn;
    };
    const lossy: UpdateHub = {
      ...hub,
      subscribe: (channel, listener) => hub.subscribe(channel, lossyFor(listener)),
      unsubscribe: (channel, listener) => hub.unsubscribe(channel, lossyFor(listener)),
    };
    const stream = await openNotificationStream({
      hub: lossy,
      store,
      audience: audienceOf(viewer),
      after: null,
      replay: 0,
      queueLimit: 100,
    });
    const sent = await sendMany(store, 10);
    const got = await take(stream, 10);
    expect(dropped).toBe(2);
    // A silent drop is only noticed at the source's next entry: the missing ones come then, late, never lost.
    const entries = got.map((event) => (event.type === 'entry' ? event.entry : null));
    expect(entries.map((entry) => entry?.notification.id).sort()).toEqual(sent.map((entry) => entry.notification.id).sort());
    for (const source of new Set(sent.map((entry) => entry.source))) {
      const seqs = entries.filter((entry) => entry?.source === source).map((entry) => entry!.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    }
  });

  it('feeds a consumer that fell behind its queue limit from the sets: everything once, in order', async () => {
    const store = newStore();
    const stream = await openNotificationStream({
      hub,
      store,
      audience: audienceOf(viewer),
      after: null,
      replay: 0,
      queueLimit: 10,
    });
    // A consumer with room for everything, on the same hub: once it has all 80, so has the first one's
    // queue, which overflowed long before.
    const observer = await openNotificationStream({
      hub,
      store,
      audience: audienceOf(viewer),
      after: null,
      replay: 0,
      queueLimit: 1_000,
    });
    const sent = await sendMany(store, 80);
    await take(observer, 80);
    await observer.return();
    const events = await take(stream, 80);
    // Live, one target after another as sent; the part fed from the sets, by stored time, target and seq.
    const got = events.map((event) => (event.type === 'entry' ? event.entry : null));
    expect(got.map((entry) => entry?.notification.id).sort()).toEqual(sent.map((entry) => entry.notification.id).sort());
    for (const source of new Set(sent.map((entry) => entry.source))) {
      const seqs = got.filter((entry) => entry?.source === source).map((entry) => entry!.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    }
  });

  it('catches up from the sets after its Redis subscriber reconnects', async () => {
    const store = newStore();
    const ownSubscriber = connect();
    const ownHub = createUpdateHub(ownSubscriber);
    const stream = await openNotificationStream({
      hub: ownHub,
      store,
      audience: audienceOf(viewer),
      after: null,
      replay: 0,
      queueLimit: 100,
    });
    await sendMany(store, 2);
    const reconnected = new Promise((resolve) => ownSubscriber.once('ready', resolve));
    ownSubscriber.disconnect(true);
    await store.send({ target: targets[3], title: 'during 1' });
    await store.send({ target: targets[1], title: 'during 2' });
    await reconnected;
    expect(titles(await take(stream, 4))).toEqual(['t0', 't1', 'during 1', 'during 2']);
    ownSubscriber.disconnect();
  });

  it("gives a stream the viewer's removals and mutes from those two hashes alone, not from what they have read", async () => {
    const keyPrefix = uniquePrefix();
    const store = createNotificationStore(redis, { keyPrefix, retentionCount: 1_000, retentionDays: 30 });
    const audience = audienceOf(viewer);
    const [kept, deleted] = [
      await store.send({ target: targets[0], title: 'kept' }),
      await store.send({ target: targets[0], title: 'gone' }),
    ];
    await store.markRead(audience, [parseNotificationId(kept.notification.id)!]);
    await store.remove(audience, [parseNotificationId(deleted.notification.id)!], 'DELETED');
    await store.setPreferences(viewer.id, { mutedLevels: ['INFO'], mutedTargetKinds: [] });
    const monitor = await monitorCommands();
    const choices = await store.choices(viewer.id);
    await monitor.settled();
    monitor.stop();
    expect(choices.preferences.mutedLevels).toEqual(['INFO']);
    expect([...choices.removed]).toEqual([[deleted.notification.id, 'DELETED']]);
    const sent = monitor.commands.filter(({ args }) => args.some((arg) => arg.startsWith(keyPrefix)));
    expect(sent.map(({ command }) => command)).toEqual(['hmget', 'hgetall']);
  });

  it('creates no key for a viewer who only reads: streams, inbox and counts of targets nobody sent to', async () => {
    const keyPrefix = uniquePrefix();
    const store = createNotificationStore(redis, { keyPrefix, retentionCount: 1_000, retentionDays: 30 });
    const audience = audienceOf(viewer);
    const stream = await openNotificationStream({ hub, store, audience, after: null, replay: 10, queueLimit: 100 });
    expect(await store.unread(audience)).toEqual({ total: 0, byLevel: { INFO: 0, SUCCESS: 0, WARNING: 0, ERROR: 0 } });
    expect((await store.inbox(audience, { before: null, first: 10, unreadOnly: false })).items).toEqual([]);
    expect(await store.markAllRead(audience)).toEqual({ marked: 0, unread: 0 });
    expect(await redis.keys(`${keyPrefix}*`)).toEqual([]);
    // The first notification starts the target's history; the open stream takes it up without a gap notice.
    await store.send({ target: targets[2], title: 'first' });
    expect(titles(await take(stream, 1))).toEqual(['first']);
  });

  it('drops notifications past their age from every target, and says so to a cursor that needed them', async () => {
    const store = newStore({ retentionDays: 1 / 86_400 });
    const audience = audienceOf(viewer);
    const old = await sendMany(store, 4);
    expect((await store.unread(audience)).total).toBe(4);
    await new Promise((r) => setTimeout(r, 1_100));
    const fresh = await store.send({ target: targets[0], title: 'fresh' });
    expect((await store.unread(audience)).total).toBe(1);
    const page = await store.inbox(audience, { before: null, first: 10, unreadOnly: false });
    expect(page.items.map((item) => item.entry.notification.id)).toEqual([fresh.notification.id]);
    const stream = await openNotificationStream({
      hub,
      store,
      audience,
      after: { sources: new Map([[nth(old, 0).source, { epoch: nth(old, 0).epoch, seq: nth(old, 0).seq }]]), pivot: null },
      replay: 0,
      queueLimit: 100,
    });
    expect(titles(await take(stream, 2))).toEqual(['TRIMMED', 'fresh']);
  });
});
