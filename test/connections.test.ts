import type { FormattedExecutionResult } from 'graphql';
import { execFileSync } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Client } from 'graphql-ws';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { signToken } from '../src/auth/token.js';
import { MeDocument, RefreshTokenDocument, RevokeUserDocument } from '../src/client/generated.js';
import { expiryOf, startHerald, startInstances, TEST_SECRET, wsClient, type Herald } from './helpers/herald.js';
import type { Tuple } from './helpers/elements.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { errorCodes as codes, waitFor } from './helpers/streams.js';

const SEND = 'mutation($input: SendNotificationInput!) { sendNotification(input: $input) { id title } }';
const WATCH = 'subscription { notifications { id title } }';
const ME = '{ me { id roles projects expiresAt } }';
const REFRESH = 'mutation($token: String!) { refreshToken(token: $token) { id roles projects expiresAt } }';
const ADMIN = { sub: 'root', roles: ['admin'] };

const started: Herald[] = [];
const clients: Client[] = [];
const sockets: WebSocket[] = [];
afterAll(async () => {
  for (const socket of sockets) socket.terminate();
  await Promise.all(clients.map((client) => Promise.resolve(client.dispose())));
  await Promise.all(started.map((h) => h.stop()));
});

async function instances<const N extends number>(count: N, env: Record<string, string> = {}): Promise<Tuple<Herald, N>> {
  const apps = await startInstances(count, env);
  started.push(...apps);
  return apps;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An open graphql-ws connection, and the close code it ends with (null while open). */
interface Tab {
  client: Client;
  closeCode(): number | null;
  closed: Promise<number>;
}

function open(url: string, token: string, socket?: WebSocket.ClientOptions): { tab: Tab; outcome: Promise<'acked' | number> } {
  const client = wsClient(url, token, { lazy: false, socket });
  clients.push(client);
  let code: number | null = null;
  const closed = new Promise<number>((resolve) =>
    client.on('closed', (event) => {
      code = (event as { code: number }).code;
      resolve(code);
    }),
  );
  const outcome = new Promise<'acked' | number>((resolve) => {
    client.on('connected', () => resolve('acked'));
    void closed.then(resolve);
  });
  return { tab: { client, closeCode: () => code, closed }, outcome };
}

/** A graphql-ws connection the server acknowledged. */
async function tab(url: string, token: string, socket?: WebSocket.ClientOptions): Promise<Tab> {
  const { tab: opened, outcome } = open(url, token, socket);
  const result = await outcome;
  if (result !== 'acked') throw new Error(`closed with ${result} before it was acknowledged`);
  return opened;
}

/** The close code of a connection the server refused before acknowledging it. */
async function refusal(url: string, token: string, socket?: WebSocket.ClientOptions): Promise<number> {
  const result = await open(url, token, socket).outcome;
  if (result === 'acked') throw new Error('acknowledged, expected a refusal');
  return result;
}

/** Runs one query or mutation over an open connection. */
function run(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<FormattedExecutionResult<Record<string, unknown>, unknown>> {
  return new Promise((resolve) => {
    let result: FormattedExecutionResult<Record<string, unknown>, unknown> = {};
    client.subscribe<Record<string, unknown>>(
      { query, variables },
      {
        next: (value) => (result = value),
        error: (error) => resolve({ errors: error as FormattedExecutionResult['errors'] }),
        complete: () => resolve(result),
      },
    );
  });
}

/** A running `notifications` subscription that collects titles. */
interface Watch {
  titles: string[];
  errors: unknown[];
  completed: boolean;
  stop(): void;
  /** Resolves once `title` arrived. */
  received(title: string, timeoutMs?: number): Promise<void>;
}

/** A graphql-ws or graphql-sse client: both subscribe with a sink and return an unsubscribe function. */
type Subscriber = Client | ReturnType<Herald['sse']>;

function watch(client: Subscriber): Watch {
  const state: Watch = {
    titles: [],
    errors: [],
    completed: false,
    stop: () => undefined,
    received: (title, timeoutMs = 5_000) => waitFor(() => state.titles.includes(title), timeoutMs),
  };
  state.stop = (client as Client).subscribe<{ notifications: { title: string } }>(
    { query: WATCH },
    {
      next: (value) => {
        if (value.errors) state.errors.push(...value.errors);
        if (value.data) state.titles.push(value.data.notifications.title);
      },
      error: (error) => state.errors.push(error),
      complete: () => (state.completed = true),
    },
  );
  return state;
}

/** Sends a notification to one user, as an admin, over HTTP. */
async function notify(h: Herald, userId: string, title: string): Promise<void> {
  const { body } = await h.http(await h.token(ADMIN), SEND, { input: { target: { kind: 'USER', id: userId }, title } });
  expect(body.errors).toBeUndefined();
}

/** Subscribes and waits until the subscription is live (a notification sent now reaches it). */
async function liveWatch(h: Herald, client: Subscriber, userId: string): Promise<Watch> {
  const w = watch(client);
  let probe = 0;
  await waitFor(async () => {
    probe += 1;
    await notify(h, userId, `probe ${probe}`);
    await sleep(50);
    return w.titles.some((title) => title.startsWith('probe'));
  }, 5_000);
  return w;
}

/** The value of one series of the instance's /metrics (0 when absent). */
async function metric(h: Herald, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await scrape(h.url), name, labels) ?? 0;
}

const limitHits = (h: Herald, limit: string) => metric(h, 'herald_limits_hit_total', { limit });

describe('in-band token refresh', () => {
  it('keeps a live subscription receiving, and pushes the expiry out to the new token', async () => {
    const [h] = await instances(1);
    const short = await h.token({ sub: 'alice', ttlSeconds: 2 });
    const shortExpiry = expiryOf(short);
    const alice = await tab(h.wsUrl, short);
    const w = await liveWatch(h, alice.client, 'alice');

    const long = await h.token({ sub: 'alice', projects: ['apollo'], ttlSeconds: 3_600 });
    const refreshed = await run(alice.client, REFRESH, { token: long });
    expect(refreshed.errors).toBeUndefined();
    expect(refreshed.data!.refreshToken).toEqual({
      id: 'alice',
      roles: [],
      projects: ['apollo'],
      expiresAt: new Date(expiryOf(long) * 1000).toISOString(),
    });

    // Past the first token's expiry, the connection is still open and the same subscription receives.
    await sleep(Math.max(shortExpiry * 1000 + 1_000 - Date.now(), 0));
    expect(alice.closeCode()).toBeNull();
    await notify(h, 'alice', 'after the old expiry');
    await w.received('after the old expiry');
    expect(w.errors).toEqual([]);
    expect(w.completed).toBe(false);
    // New operations on the connection run as the new token says.
    expect((await run(alice.client, ME)).data!.me).toMatchObject({ id: 'alice', projects: ['apollo'] });
  });

  it('re-arms the expiry timer for the new token: a refresh to another short token closes at its expiry', async () => {
    const [h] = await instances(1);
    const alice = await tab(h.wsUrl, await h.token({ sub: 'alice', ttlSeconds: 1 }));
    const next = await h.token({ sub: 'alice', ttlSeconds: 3 });
    expect((await run(alice.client, REFRESH, { token: next })).errors).toBeUndefined();
    const code = await alice.closed;
    expect(code).toBe(4401);
    expect(Date.now()).toBeGreaterThanOrEqual(expiryOf(next) * 1000 - 50);
  });

  it("refuses another user's token with FORBIDDEN and a bad one with UNAUTHENTICATED, keeping the connection as it was", async () => {
    const [h] = await instances(1);
    const alice = await tab(h.wsUrl, await h.token({ sub: 'alice', roles: ['reader'] }));
    const w = await liveWatch(h, alice.client, 'alice');

    const asBob = await run(alice.client, REFRESH, { token: await h.token({ sub: 'bob', roles: ['admin'] }) });
    expect(asBob.data ?? null).toBeNull();
    expect(codes(asBob.errors)).toEqual(['FORBIDDEN']);
    for (const token of ['not-a-jwt', await signToken(TEST_SECRET, { sub: 'alice', ttlSeconds: -60 })]) {
      const bad = await run(alice.client, REFRESH, { token });
      expect(codes(bad.errors)).toEqual(['UNAUTHENTICATED']);
    }

    expect(alice.closeCode()).toBeNull();
    expect((await run(alice.client, ME)).data!.me).toMatchObject({ id: 'alice', roles: ['reader'] });
    await notify(h, 'alice', 'still here');
    await w.received('still here');
  });

  it('over HTTP only checks the token and returns its viewer', async () => {
    const [h] = await instances(1);
    const alice = await h.token('alice');
    const fresh = await h.token({ sub: 'alice', roles: ['ops'] });
    const { status, body } = await h.http(alice, RefreshTokenDocument, { token: fresh });
    expect(status).toBe(200);
    expect(body.data!.refreshToken).toMatchObject({ id: 'alice', roles: ['ops'] });
    const other = await h.http(alice, RefreshTokenDocument, { token: await h.token('bob') });
    expect(codes(other.body)).toEqual(['FORBIDDEN']);
  });
});

describe('revocation', () => {
  it("closes the user's sockets on every instance with 4403 and refuses their old tokens there, leaving others alone", async () => {
    const [a, b] = await instances(2);
    const old = await a.token('alice');
    const aliceTabs = [await tab(a.wsUrl, old), await tab(a.wsUrl, old), await tab(b.wsUrl, old)];
    const bobToken = await a.token('bob');
    const bobA = await tab(a.wsUrl, bobToken);
    const bobB = await tab(b.wsUrl, bobToken);
    const bobWatch = await liveWatch(b, bobB.client, 'bob');
    const aliceSse = await liveWatch(a, a.sse(old), 'alice');
    const bobSse = await liveWatch(a, a.sse(bobToken), 'bob');

    const denied = await a.http(await a.token({ sub: 'eve', roles: ['ops'] }), RevokeUserDocument, { userId: 'alice' });
    expect(codes(denied.body)).toEqual(['FORBIDDEN']);
    expect(aliceTabs.map((t) => t.closeCode())).toEqual([null, null, null]);

    const revoked = await a.http(await a.token(ADMIN), RevokeUserDocument, { userId: 'alice' });
    const revokedAt = Math.floor(Date.now() / 1000);
    // Two WebSockets and one SSE subscription on the instance that answered.
    expect(revoked.body).toEqual({ data: { revokeUser: 3 } });
    expect(await Promise.all(aliceTabs.map((t) => t.closed))).toEqual([4403, 4403, 4403]);
    await waitFor(() => aliceSse.completed);
    expect(codes(aliceSse.errors)).toEqual(['UNAUTHENTICATED']);
    expect(await metric(b, 'herald_revoked_connections_total')).toBe(1);

    // The old token is refused on both instances, and on one started after the revocation.
    const late = await startHerald({ KEY_PREFIX: a.config.keyPrefix }, { workers: false });
    started.push(late);
    for (const h of [a, b, late]) {
      const { status, body } = await h.http(old, MeDocument);
      expect(status).toBe(401);
      expect(codes(body)).toEqual(['UNAUTHENTICATED']);
      expect(await refusal(h.wsUrl, old)).toBe(4401);
    }

    // bob noticed nothing.
    expect([bobA.closeCode(), bobB.closeCode()]).toEqual([null, null]);
    await notify(a, 'bob', 'bob goes on');
    await Promise.all([bobWatch, bobSse].map((w) => w.received('bob goes on')));
    expect(bobSse.completed).toBe(false);
    expect((await run(bobA.client, ME)).data!.me).toMatchObject({ id: 'bob' });

    // A token issued after the revocation works again, everywhere; the old one cannot be handed over in-band.
    await waitFor(() => Math.floor(Date.now() / 1000) > revokedAt, 2_000);
    const fresh = await a.token('alice');
    for (const h of [a, b, late]) {
      expect((await h.http(fresh, MeDocument)).body.data!.me.id).toBe('alice');
      const again = await tab(h.wsUrl, fresh);
      expect(codes((await run(again.client, REFRESH, { token: old })).errors)).toEqual(['UNAUTHENTICATED']);
      expect(again.closeCode()).toBeNull();
    }
  });
});

describe('caps', () => {
  it('closes the connection over MAX_CONNECTIONS_PER_USER, counted over every instance, with 4429', async () => {
    const [a, b] = await instances(2, { MAX_CONNECTIONS_PER_USER: '2' });
    const alice = await a.token('alice');
    const first = await tab(a.wsUrl, alice);
    await tab(b.wsUrl, alice);
    const before = await limitHits(a, 'connections_per_user');
    expect(await refusal(a.wsUrl, alice)).toBe(4429);
    expect(await refusal(b.wsUrl, alice)).toBe(4429);
    expect(await limitHits(a, 'connections_per_user')).toBe(before + 1);
    expect(await limitHits(b, 'connections_per_user')).toBe(1);

    // Other users are not affected, and alice's open connections keep working.
    const bob = await a.token('bob');
    await Promise.all([tab(a.wsUrl, bob), tab(b.wsUrl, bob)]);
    expect((await run(first.client, ME)).data!.me).toMatchObject({ id: 'alice' });

    // A closed connection frees its place.
    await first.client.dispose();
    await waitFor(async () => (await open(b.wsUrl, alice).outcome) === 'acked', 5_000);
  });

  it('closes the connection over MAX_CONNECTIONS_PER_IP from one address with 4429, leaving other addresses alone', async () => {
    const [h] = await instances(1, { MAX_CONNECTIONS_PER_IP: '2' });
    const from = (localAddress: string) => ({ localAddress });
    const [ana, ben] = await Promise.all([h.token('ana'), h.token('ben')]);
    const first = await tab(h.wsUrl, ana, from('127.0.0.2'));
    await tab(h.wsUrl, ben, from('127.0.0.2'));
    // Whoever the user: the address is full.
    expect(await refusal(h.wsUrl, await h.token('cal'), from('127.0.0.2'))).toBe(4429);
    expect(await limitHits(h, 'connections_per_ip')).toBe(1);
    await tab(h.wsUrl, ana, from('127.0.0.3'));

    await first.client.dispose();
    await waitFor(async () => (await open(h.wsUrl, ana, from('127.0.0.2')).outcome) === 'acked', 5_000);
  });

  it('counts the address a trusted proxy saw (TRUST_PROXY_HOPS), not one the client wrote into X-Forwarded-For', async () => {
    const [h] = await instances(1, { MAX_CONNECTIONS_PER_IP: '1', TRUST_PROXY_HOPS: '1' });
    const token = await h.token('dee');
    const via = (forwardedFor: string) => ({ headers: { 'x-forwarded-for': forwardedFor } });
    // Every socket comes from 127.0.0.1, the proxy; the proxy's entry tells the clients apart.
    await tab(h.wsUrl, token, via('198.51.100.7'));
    await tab(h.wsUrl, token, via('198.51.100.8'));
    expect(await refusal(h.wsUrl, token, via('203.0.113.1, 198.51.100.7'))).toBe(4429);
  });

  it('closes the connection over MAX_CONNECTIONS on the instance with 1013, and frees the place when one closes', async () => {
    const [h] = await instances(1, { MAX_CONNECTIONS: '2' });
    const first = await tab(h.wsUrl, await h.token('eve'));
    await tab(h.wsUrl, await h.token('fay'));
    expect(await refusal(h.wsUrl, await h.token('gus'))).toBe(1013);
    expect(await limitHits(h, 'connections_per_instance')).toBe(1);
    await first.client.dispose();
    await waitFor(async () => (await open(h.wsUrl, await h.token('gus')).outcome) === 'acked', 5_000);
  });

  it('closes a connection with no subscription for WS_IDLE_TIMEOUT_MS with 4408, and not one that is watching', async () => {
    const [h] = await instances(1, { WS_IDLE_TIMEOUT_MS: '1000' });
    const token = await h.token('hal');
    const idle = await tab(h.wsUrl, token);
    const watching = await tab(h.wsUrl, token);
    const w = await liveWatch(h, watching.client, 'hal');
    expect(await idle.closed).toBe(4408);
    expect(await limitHits(h, 'idle_timeout')).toBe(1);
    // The idle one was closed after a second, at most a wheel tick late; the watching one outlives
    // that by two more and still receives.
    await sleep(2_000);
    expect(watching.closeCode()).toBeNull();
    await notify(h, 'hal', 'still here');
    await w.received('still here');
    // Once its last subscription ends, it idles too.
    w.stop();
    expect(await watching.closed).toBe(4408);
  });

  it('fails the subscription over MAX_SUBSCRIPTIONS_PER_CONNECTION with RATE_LIMITED while the others go on', async () => {
    const [h] = await instances(1, { MAX_SUBSCRIPTIONS_PER_CONNECTION: '2' });
    const token = await h.token('alice');
    const alice = await tab(h.wsUrl, token);
    const [one, two] = [await liveWatch(h, alice.client, 'alice'), await liveWatch(h, alice.client, 'alice')];
    const before = await limitHits(h, 'subscriptions_per_connection');
    const three = watch(alice.client);
    await waitFor(() => three.errors.length > 0);
    // The operation fails, not the connection; no HTTP status on a WebSocket.
    expect(three.errors).toEqual([
      [expect.objectContaining({ extensions: { code: 'RATE_LIMITED', limit: 'subscriptions_per_connection' } })],
    ]);
    expect(three.titles).toEqual([]);
    expect(await limitHits(h, 'subscriptions_per_connection')).toBe(before + 1);

    // Queries and mutations don't count; the first two keep receiving; another connection has its own allowance.
    expect((await run(alice.client, ME)).data!.me).toMatchObject({ id: 'alice' });
    const elsewhere = await liveWatch(h, (await tab(h.wsUrl, token)).client, 'alice');
    await notify(h, 'alice', 'to all three');
    await Promise.all([one, two, elsewhere].map((w) => w.received('to all three')));
    expect(alice.closeCode()).toBeNull();

    // Completing one frees its place once the server has ended it; the connection is then full again.
    one.stop();
    await waitFor(
      async () => (await metric(h, 'herald_subscriptions', { field: 'notifications', transport: 'websocket' })) === 2,
    );
    const next = await liveWatch(h, alice.client, 'alice');
    expect(next.errors).toEqual([]);
    const fourth = watch(alice.client);
    await waitFor(() => fourth.errors.length > 0);
    expect(codes(fourth.errors)).toEqual(['RATE_LIMITED']);
  });

  it('answers RATE_LIMITED past MUTATIONS_PER_MINUTE, on every transport and instance, to that user only', async () => {
    const [a, b] = await instances(2, { MUTATIONS_PER_MINUTE: '3' });
    // A user's minute starts at their first mutation, so these four fall in one window whatever the clock says.
    const alice = await a.token('alice');
    const mark = 'mutation { markNotificationsRead(all: true) }';
    for (const h of [a, b, a]) expect((await h.http(alice, mark)).body).toEqual({ data: { markNotificationsRead: 0 } });

    const before = await limitHits(b, 'mutations_per_minute');
    const limited = await b.http(alice, mark);
    expect(limited.status).toBe(429);
    expect(codes(limited.body)).toEqual(['RATE_LIMITED']);
    expect(limited.body.errors?.[0]?.extensions).toMatchObject({
      limit: 'mutations_per_minute',
      retryAfterSeconds: expect.any(Number),
    });
    expect(await limitHits(b, 'mutations_per_minute')).toBe(before + 1);
    const ws = await tab(a.wsUrl, alice);
    const overWs = await run(ws.client, mark);
    expect(codes(overWs.errors)).toEqual(['RATE_LIMITED']);
    expect(overWs.errors?.[0]?.extensions).not.toHaveProperty('http');

    // Queries, token refresh, and other users go on.
    expect((await run(ws.client, ME)).data!.me).toMatchObject({ id: 'alice' });
    expect((await run(ws.client, REFRESH, { token: await a.token('alice') })).errors).toBeUndefined();
    const bob = await a.token('bob');
    expect((await a.http(bob, mark)).body).toEqual({ data: { markNotificationsRead: 0 } });
    expect((await run((await tab(b.wsUrl, bob)).client, mark)).data).toEqual({ markNotificationsRead: 0 });
  });

  it('closes a socket that sends a message over the size limit with 1009 and serves the next, and answers a body over it with 413', async () => {
    const [h] = await instances(1, { MAX_UPLOAD_BYTES: '1000', MAX_CONTENT_BYTES: '1000' });
    expect(h.config.limits.maxRequestBytes).toBe(1000 + 64 * 1024);
    const token = await h.token('alice');
    const bystander = await tab(h.wsUrl, token);
    const socket = new WebSocket(h.wsUrl, 'graphql-transport-ws');
    sockets.push(socket);
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.on('open', resolve));
    socket.send(
      JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}`, padding: 'x'.repeat(70 * 1024) } }),
    );
    expect(await closed).toEqual({ code: 1009, reason: `Message over ${h.config.limits.maxRequestBytes} bytes` });
    expect(await limitHits(h, 'websocket_message_size')).toBe(1);

    const body = JSON.stringify({ query: '{ me { id } }', variables: { padding: 'x'.repeat(70 * 1024) } });
    const response = await fetch(`${h.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body,
    });
    expect(response.status).toBe(413);
    expect(await limitHits(h, 'request_body_size')).toBe(1);

    expect(bystander.closeCode()).toBeNull();
    expect((await run(bystander.client, ME)).data!.me).toMatchObject({ id: 'alice' });
    // The server goes on accepting connections, and the limit counted that one message only.
    const after = await tab(h.wsUrl, token);
    expect((await run(after.client, ME)).data!.me).toMatchObject({ id: 'alice' });
    expect(await limitHits(h, 'websocket_message_size')).toBe(1);
  });
});

describe('keep-alive', () => {
  const KEEPALIVE_MS = 500;

  it('drops a socket that stops answering pings, counts it, and keeps answering ones open', async () => {
    const [h] = await instances(1, { WS_KEEPALIVE_MS: String(KEEPALIVE_MS) });
    const token = await h.token('alice');
    const healthy = await tab(h.wsUrl, token);

    const socket = new WebSocket(h.wsUrl, 'graphql-transport-ws', { autoPong: false });
    sockets.push(socket);
    let pings = 0;
    socket.on('ping', () => (pings += 1));
    const acked = new Promise<void>((resolve) =>
      socket.on('message', (data) => (data as Buffer).toString().includes('connection_ack') && resolve()),
    );
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      socket.on('close', (code) => resolve({ code, at: Date.now() })),
    );
    await new Promise((resolve) => socket.on('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await acked;
    const ackedAt = Date.now();

    const { code, at } = await closed;
    expect(code).toBe(1006); // terminated: no close frame for a peer that is gone
    expect(pings).toBeGreaterThanOrEqual(1);
    // Within two intervals, give or take a busy machine (the default interval is 12 s); only the
    // keep-alive counts a dead connection.
    expect(at - ackedAt).toBeLessThan(2 * KEEPALIVE_MS + 4_000);
    expect(await metric(h, 'herald_dead_connections_total')).toBe(1);
    // It is off the presence count as well.
    await waitFor(async () => {
      const { body } = await h.http<{ onlineUsers: unknown }>(await h.token(ADMIN), '{ onlineUsers { id connections } }');
      return JSON.stringify(body.data!.onlineUsers) === JSON.stringify([{ id: 'alice', connections: 1 }]);
    });

    // The client that answers pings is still there several intervals later.
    await sleep(4 * KEEPALIVE_MS);
    expect(healthy.closeCode()).toBeNull();
    expect((await run(healthy.client, ME)).data!.me).toMatchObject({ id: 'alice' });
    expect(await metric(h, 'herald_dead_connections_total')).toBe(1);
  });
});

describe('permessage-deflate', () => {
  const BODY = 'x'.repeat(10_000);
  const SEND_TO_SELF = 'mutation($input: SendNotificationInput!) { sendNotification(input: $input) { body } }';

  /**
   * A raw socket that offers permessage-deflate (as ws and browsers do) runs one mutation whose
   * result carries a 10,000-character body: the extension the server accepted, the body that
   * arrived, and the bytes the socket read for it all.
   */
  async function sendLargeResult(h: Herald): Promise<{ extensions: string | undefined; body: string; bytesRead: number }> {
    const token = await h.token('alice');
    const socket = new WebSocket(h.wsUrl, 'graphql-transport-ws', { perMessageDeflate: true });
    sockets.push(socket);
    const upgraded = new Promise<IncomingMessage>((resolve) => socket.once('upgrade', resolve));
    const messages: { type: string; payload?: { data: { sendNotification: { body: string } } } }[] = [];
    const arrived = (type: string) => waitFor(() => messages.some((message) => message.type === type));
    socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString())));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await arrived('connection_ack');
    const input = { target: { kind: 'USER', id: 'alice' }, title: 'large', body: BODY };
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SEND_TO_SELF, variables: { input } } }));
    await arrived('complete');
    const response = await upgraded;
    const next = messages.find((message) => message.type === 'next');
    return {
      extensions: response.headers['sec-websocket-extensions'],
      body: next!.payload!.data.sendNotification.body,
      bytesRead: response.socket.bytesRead,
    };
  }

  it('is not offered by default: a client that asks for it gets plain frames', async () => {
    const [h] = await instances(1);
    const { extensions, body, bytesRead } = await sendLargeResult(h);
    expect(extensions).toBeUndefined();
    expect(body).toBe(BODY);
    expect(bytesRead).toBeGreaterThan(BODY.length);
  });

  it('compresses messages for a client that negotiates it when WS_PERMESSAGE_DEFLATE is on', async () => {
    const [h] = await instances(1, { WS_PERMESSAGE_DEFLATE: 'true' });
    const { extensions, body, bytesRead } = await sendLargeResult(h);
    expect(extensions).toMatch(/^permessage-deflate/);
    expect(body).toBe(BODY);
    // The headers, the ack, and the result deflated from over 10 KB to a few hundred bytes.
    expect(bytesRead).toBeLessThan(BODY.length / 4);
  });
});

describe('listen backlog', () => {
  /** The backlog the kernel holds for the socket listening on `port` (ss' Send-Q of a listening socket). */
  function backlogOf(port: number): number {
    const line = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim();
    return Number(line.split(/\s+/)[2]);
  }

  it('listens with LISTEN_BACKLOG, so a connect storm beyond Node’s 511 is queued rather than reset', async () => {
    const [h] = await instances(1, { LISTEN_BACKLOG: '1234' });
    expect(backlogOf(Number(new URL(h.url).port))).toBe(1234);
    const client = wsClient(h.wsUrl, await h.token('alice'));
    clients.push(client);
    const me = await run(client, ME);
    expect(me.data).toMatchObject({ me: { id: 'alice' } });
  });
});
