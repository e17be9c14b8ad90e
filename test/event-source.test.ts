import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublisher, type Publisher, type ResourceRef } from '../src/publisher.js';
import { SSE_COOKIE, SSE_RETRY_MS, SSE_SESSION_PATH } from '../src/transport/event-source.js';
import { encodeCursor } from '../src/updates/cursor.js';
import type { UpdateEntry } from '../src/updates/types.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { redisUrl } from './helpers/redis.js';
import { readEventStream } from './helpers/streams.js';

let herald: Herald;
let publisher: Publisher;

beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
  publisher = createPublisher({ env: { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix } });
});
afterAll(async () => {
  await publisher?.close();
  await herald?.stop();
});

const cursorOf = (entry: UpdateEntry) => encodeCursor({ epoch: entry.epoch, seq: entry.seq });

/** The GET URL an EventSource opens for a file's progress; the selection has no `cursor`, on purpose. */
function fileProgressUrl(file: ResourceRef, after?: string): string {
  const query = 'subscription($id: ID!, $after: String) { fileProgress(fileId: $id, after: $after) { seq event } }';
  const variables = JSON.stringify({ id: file.id, after: after ?? null });
  return `${herald.url}/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(variables)}`;
}

const seqsOf = (events: Array<{ data: string }>) =>
  events.map((event) => (JSON.parse(event.data) as { data: { fileProgress: { seq: number } } }).data.fileProgress.seq);

async function fileWithUpdates(ownerId: string, count: number): Promise<{ file: ResourceRef; entries: UpdateEntry[] }> {
  const file = await publisher.register({ kind: 'file', ownerId });
  const entries: UpdateEntry[] = [];
  for (let i = 1; i <= count; i += 1)
    entries.push(await publisher.append(file, { event: `step_${i}`, status: 'PROCESSING', progress: i }));
  return { file, entries };
}

/** POSTs the access token to the session endpoint and returns the response and the cookie pair it sets. */
async function openSession(token: string | null) {
  const response = await fetch(`${herald.url}${SSE_SESSION_PATH}`, {
    method: 'POST',
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  const setCookie = response.headers.get('set-cookie') ?? '';
  return { response, setCookie, cookie: setCookie.split(';', 1)[0] ?? '' };
}

describe('SSE event ids and Last-Event-ID', () => {
  it('sends a retry hint, then id: <cursor> on every event, even when the selection has no cursor', async () => {
    const { file, entries } = await fileWithUpdates('lee', 3);
    const stream = await readEventStream(fileProgressUrl(file), { authorization: `Bearer ${await herald.token('lee')}` });
    try {
      expect(stream.status).toBe(200);
      const events = await stream.nextEvents(3);
      expect(seqsOf(events)).toEqual([1, 2, 3]);
      expect(events.map((event) => event.id)).toEqual(entries.map(cursorOf));
      expect(events.every((event) => event.retry === SSE_RETRY_MS)).toBe(true);
    } finally {
      stream.close();
    }
  });

  it('resumes right after Last-Event-ID on the same URL: nothing lost, nothing twice, even when the URL has its own after', async () => {
    const { file, entries } = await fileWithUpdates('lee', 4);
    const authorization = `Bearer ${await herald.token('lee')}`;
    const url = fileProgressUrl(file, cursorOf(entries[0]!));
    const first = await readEventStream(url, { authorization });
    expect(seqsOf(await first.nextEvents(3))).toEqual([2, 3, 4]);
    first.close();
    const lastEventId = first.events.filter((event) => event.event === 'next').at(-1)!.id!;
    const resumed = await readEventStream(url, { authorization, 'last-event-id': lastEventId });
    try {
      await publisher.append(file, { event: 'step_5', status: 'PROCESSING', progress: 5 });
      await publisher.append(file, { event: 'done', status: 'COMPLETED', progress: 100 });
      const events = await resumed.nextEvents(2);
      expect(seqsOf(events)).toEqual([5, 6]);
      expect(resumed.events.at(-1)?.event).toBe('complete');
    } finally {
      resumed.close();
    }
  });

  it('does the same for notifications: an id on every item, and Last-Event-ID resumes after it', async () => {
    const token = await herald.token('noa');
    for (const title of ['one', 'two', 'three']) {
      await herald.http(
        token,
        `mutation { sendNotification(input: { target: { kind: USER, id: "noa" }, title: "${title}" }) { id } }`,
      );
    }
    const url = `${herald.url}/graphql?query=${encodeURIComponent('subscription { notifications { title } }')}`;
    const titles = (events: Array<{ data: string }>) =>
      events.map((event) => (JSON.parse(event.data) as { data: { notifications: { title: string } } }).data.notifications.title);
    const first = await readEventStream(url, { authorization: `Bearer ${token}` });
    const events = await first.nextEvents(3);
    first.close();
    expect(titles(events)).toEqual(['one', 'two', 'three']);
    expect(events.every((event) => event.id !== undefined)).toBe(true);
    const resumed = await readEventStream(url, { authorization: `Bearer ${token}`, 'last-event-id': events[1]!.id! });
    const after = await resumed.nextEvents(1);
    resumed.close();
    expect(titles(after)).toEqual(['three']);
  });

  it('refuses a Last-Event-ID that is not a cursor', async () => {
    const { file } = await fileWithUpdates('lee', 1);
    const stream = await readEventStream(fileProgressUrl(file), {
      authorization: `Bearer ${await herald.token('lee')}`,
      'last-event-id': 'not-a-cursor',
    });
    const [event] = await stream.nextEvents(1);
    stream.close();
    expect(event?.data).toContain('BAD_USER_INPUT');
    expect(event?.data).toContain('Last-Event-ID');
  });
});

describe('the SSE cookie', () => {
  it('is set by an authenticated POST: HttpOnly, SameSite=Strict, scoped to /graphql, no longer than the token', async () => {
    const { response, setCookie } = await openSession(await herald.token({ sub: 'lee', ttlSeconds: 600 }));
    expect(response.status).toBe(204);
    const attributes = setCookie.split('; ');
    expect(attributes[0]).toMatch(new RegExp(`^${SSE_COOKIE}=`));
    expect(attributes).toEqual(expect.arrayContaining(['Path=/graphql', 'HttpOnly', 'SameSite=Strict']));
    const maxAge = Number(attributes.find((attribute) => attribute.startsWith('Max-Age='))?.slice('Max-Age='.length));
    expect(maxAge).toBeGreaterThan(590);
    expect(maxAge).toBeLessThanOrEqual(600);
    expect(attributes).not.toContain('Secure');
  });

  it('authenticates an event stream as the token it came from: its owner gets the updates, another user is refused', async () => {
    const { file } = await fileWithUpdates('lee', 2);
    const lee = await openSession(await herald.token('lee'));
    const stream = await readEventStream(fileProgressUrl(file), { cookie: lee.cookie });
    try {
      expect(stream.status).toBe(200);
      expect(seqsOf(await stream.nextEvents(2))).toEqual([1, 2]);
    } finally {
      stream.close();
    }
    const kim = await openSession(await herald.token('kim'));
    const refused = await readEventStream(fileProgressUrl(file), { cookie: kim.cookie });
    const [event] = await refused.nextEvents(1);
    refused.close();
    expect(event?.data).toContain('FORBIDDEN');
  });

  it('is refused without a valid token: none, expired, or revoked (on the POST and on the stream)', async () => {
    const { file } = await fileWithUpdates('max', 1);
    expect((await openSession(null)).response.status).toBe(401);
    const expired = await herald.token({ sub: 'max', ttlSeconds: -10 });
    expect((await openSession(expired)).response.status).toBe(401);
    const cookieHeld = `${SSE_COOKIE}=${expired}`;
    expect((await readEventStream(fileProgressUrl(file), { cookie: cookieHeld })).status).toBe(401);
    expect((await readEventStream(fileProgressUrl(file))).status).toBe(401);

    const { cookie } = await openSession(await herald.token('max'));
    await herald.app.services.revocations.revoke('max');
    const revoked = await readEventStream(fileProgressUrl(file), { cookie });
    revoked.close();
    expect(revoked.status).toBe(401);
  });

  it('authorizes event-stream GETs only: a POST with the cookie is unauthenticated', async () => {
    const { cookie } = await openSession(await herald.token('lee'));
    const response = await fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(response.status).toBe(401);
  });

  it('is dropped by DELETE', async () => {
    const response = await fetch(`${herald.url}${SSE_SESSION_PATH}`, { method: 'DELETE' });
    expect(response.status).toBe(204);
    expect(response.headers.get('set-cookie')).toMatch(
      new RegExp(`^${SSE_COOKIE}=; Path=/graphql; HttpOnly; SameSite=Strict; Max-Age=0`),
    );
  });
});
