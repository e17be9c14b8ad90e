import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { signToken } from '../src/auth/token.js';
import {
  CancelJobDocument,
  FileProgressDocument,
  JobDocument,
  MeDocument,
  ProjectProgressDocument,
  QueryProgressDocument,
  RecentUpdatesDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type FileProgressSubscription,
} from '../src/client/generated.js';
import { expiryOf, startHerald, TEST_SECRET, type GraphQLBody, type Herald } from './helpers/herald.js';
import { collect, errorCodes as codes } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const DOCUMENT = '# Notes\n\nHerald is a progress server. What does it do? It streams 3 kinds of updates.\n';
const UNKNOWN_ID = '00000000-0000-0000-0000-000000000000';

let herald: Herald;
let alice: string;
let bob: string;

beforeAll(async () => {
  herald = await startHerald();
  alice = await herald.token({ sub: 'alice', projects: ['apollo'] });
  bob = await herald.token({ sub: 'bob', projects: ['gemini'] });
});
afterAll(() => herald?.stop());

function expectUnauthenticated(result: { status: number; body: GraphQLBody }) {
  expect(result.status).toBe(401);
  expect(result.body.data ?? null).toBeNull();
  expect(result.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect(result.body.errors?.[0]?.message).toMatch(/token/i);
}

async function startFile(token: string, projectId?: string) {
  const { body } = await herald.http(token, StartFileProcessingDocument, {
    input: { name: 'notes.md', content: DOCUMENT, projectId },
  });
  expect(body.errors).toBeUndefined();
  return body.data!.startFileProcessing;
}

function watchFile(client: Parameters<typeof collect>[0], fileId: string, after?: string) {
  return collect<FileUpdate>(client, FileProgressDocument, { fileId, after }, { field: 'fileProgress', timeoutMs: 15_000 });
}

interface RawOutcome {
  acked: boolean;
  ackedAt: number | null;
  code: number;
  reason: string;
  closedAt: number;
}

/**
 * Speaks graphql-transport-ws by hand: sends connection_init with `payload` and then nothing at
 * all, and reports whether the server acknowledged and how (and when) it closed the socket.
 */
function rawConnection(payload: Record<string, unknown>, timeoutMs = 10_000): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(herald.wsUrl, 'graphql-transport-ws');
    let ackedAt: number | null = null;
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`socket still open after ${timeoutMs} ms (acked: ${ackedAt !== null})`));
    }, timeoutMs);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
    socket.on('message', (data) => {
      const message = JSON.parse((data as Buffer).toString()) as { type: string };
      if (message.type === 'connection_ack') ackedAt = Date.now();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ acked: ackedAt !== null, ackedAt, code, reason: reason.toString(), closedAt: Date.now() });
    });
  });
}

/** Connects a graphql-ws client (by running `me`) and resolves with the code it was closed with. */
function closeCodeOf(token: string | null): Promise<number> {
  const client = herald.ws(token);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('graphql-ws client was not closed')), 10_000);
    client.on('closed', (event) => {
      clearTimeout(timer);
      resolve((event as { code: number }).code);
    });
    client.subscribe({ query: '{ me { id } }' }, { next: () => undefined, error: () => undefined, complete: () => undefined });
  });
}

describe('HTTP without a valid token', () => {
  it('answers 401 UNAUTHENTICATED with no token', async () => {
    expectUnauthenticated(await herald.http(null, MeDocument));
  });

  it('answers 401 UNAUTHENTICATED to a GET without a token', async () => {
    const response = await fetch(`${herald.url}/graphql?query=${encodeURIComponent('{ me { id } }')}`, {
      headers: { accept: 'application/graphql-response+json' },
    });
    expectUnauthenticated({ status: response.status, body: (await response.json()) as GraphQLBody });
  });

  it('answers 401 UNAUTHENTICATED to a malformed token', async () => {
    expectUnauthenticated(await herald.http('not-a-jwt', MeDocument));
    expectUnauthenticated(await herald.http('a.b.c', MeDocument));
  });

  it('answers 401 to an Authorization header that is not a Bearer token', async () => {
    const response = await fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expectUnauthenticated({ status: response.status, body: (await response.json()) as GraphQLBody });
  });

  it('answers 401 UNAUTHENTICATED to a token signed with another secret', async () => {
    const forged = await signToken('some-other-secret-that-is-long-enough-too', { sub: 'alice', roles: ['admin'] });
    expectUnauthenticated(await herald.http(forged, MeDocument));
  });

  it('answers 401 UNAUTHENTICATED to an expired token', async () => {
    const expired = await signToken(TEST_SECRET, { sub: 'alice', ttlSeconds: -60 });
    expectUnauthenticated(await herald.http(expired, MeDocument));
  });

  it('answers 401 to an unsigned (alg none) token and to one with another algorithm', async () => {
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    expectUnauthenticated(await herald.http(unsigned, MeDocument));
    const hs512 = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS512' })
      .setSubject('alice')
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(TEST_SECRET));
    expectUnauthenticated(await herald.http(hs512, MeDocument));
  });

  it('answers 401 to a correctly signed token whose claims are unusable', async () => {
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(TEST_SECRET));
    expectUnauthenticated(await herald.http(await sign({}), MeDocument)); // no sub
    expectUnauthenticated(await herald.http(await sign({ sub: 'alice/../bob' }), MeDocument));
    expectUnauthenticated(await herald.http(await sign({ sub: 'alice', projects: 'apollo' }), MeDocument));
  });
});

describe('SSE without a valid token', () => {
  it('refuses a subscription with 401 UNAUTHENTICATED (raw request)', async () => {
    const { fileId } = await startFile(alice);
    for (const authorization of [undefined, 'Bearer not-a-jwt']) {
      const response = await fetch(`${herald.url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(authorization ? { authorization } : {}),
        },
        body: JSON.stringify({
          query: 'subscription($id: ID!) { fileProgress(fileId: $id) { seq } }',
          variables: { id: fileId },
        }),
      });
      expect(response.status).toBe(401);
      const text = await response.text();
      expect(text).toContain('UNAUTHENTICATED');
      expect(text).not.toContain('"seq"');
    }
  });

  it('refuses a subscription from the graphql-sse client', async () => {
    const { fileId } = await startFile(alice);
    const run = await watchFile(herald.sse(null), fileId);
    expect(run.items).toEqual([]);
    expect(run.completed).toBe(false);
    const error = run.errors[0] as { response?: Response };
    expect(error.response?.status).toBe(401);
    // Yoga answers in the format asked for (an event stream) but with the 401 status.
    expect(await error.response!.text()).toContain('"code":"UNAUTHENTICATED"');
  });
});

describe('WebSocket without a valid token', () => {
  it('closes a graphql-ws connection with no token with 4401', async () => {
    expect(await closeCodeOf(null)).toBe(4401);
  });

  it('closes a graphql-ws connection with a bad token with 4401', async () => {
    expect(await closeCodeOf('not-a-jwt')).toBe(4401);
    expect(await closeCodeOf(await signToken('some-other-secret-that-is-long-enough-too', { sub: 'alice' }))).toBe(4401);
    expect(await closeCodeOf(await signToken(TEST_SECRET, { sub: 'alice', ttlSeconds: -60 }))).toBe(4401);
  });

  it('closes a raw graphql-transport-ws connection_init without or with a bad token with 4401, unacknowledged', async () => {
    for (const payload of [{}, { authorization: 'Bearer nope' }, { authorization: alice }]) {
      const outcome = await rawConnection(payload);
      expect(outcome).toMatchObject({ acked: false, code: 4401 });
    }
  });

  it('fails a subscription attempted without a token, and delivers nothing', async () => {
    const { fileId } = await startFile(alice);
    const run = await watchFile(herald.ws(null), fileId);
    expect(run.items).toEqual([]);
    expect((run.errors[0] as { code?: number }).code).toBe(4401);
  });

  it('acknowledges a good token, and closes the socket with 4401 when it expires though the client sends nothing', async () => {
    const token = await herald.token({ sub: 'alice', ttlSeconds: 2 });
    const exp = expiryOf(token);
    const outcome = await rawConnection({ authorization: `Bearer ${token}` });
    expect(outcome.acked).toBe(true);
    expect(outcome.code).toBe(4401);
    expect(outcome.reason).toMatch(/expired/i);
    // Closed by the expiry timer: not at connect, not before exp, and soon after it.
    expect(outcome.closedAt - outcome.ackedAt!).toBeGreaterThan(200);
    expect(outcome.closedAt).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(outcome.closedAt).toBeLessThan(exp * 1000 + 1_500);
  });

  it('closes each of several connections when its own token expires, and none sooner', async () => {
    const tokens = await Promise.all([1, 2, 3, 2].map((ttlSeconds) => herald.token({ sub: 'alice', ttlSeconds })));
    const outcomes = await Promise.all(tokens.map((token) => rawConnection({ authorization: `Bearer ${token}` })));
    outcomes.forEach((outcome, i) => {
      const exp = expiryOf(tokens[i]!);
      expect(outcome).toMatchObject({ acked: true, code: 4401 });
      expect(outcome.closedAt).toBeGreaterThanOrEqual(exp * 1000 - 50);
      expect(outcome.closedAt).toBeLessThan(exp * 1000 + 1_500);
    });
  });

  it('closes an open graphql-ws connection with a live subscription when its token expires', async () => {
    const token = await herald.token({ sub: 'alice', projects: ['apollo'], ttlSeconds: 2 });
    const client = herald.ws(token);
    let connectedAt = 0;
    client.on('connected', () => (connectedAt = Date.now()));
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      client.on('closed', (event) => resolve({ code: (event as { code: number }).code, at: Date.now() })),
    );
    // projectProgress never completes by itself, so only the expiry can end this subscription.
    const run = collect(
      client,
      ProjectProgressDocument,
      { projectId: 'apollo' },
      { field: 'projectProgress', timeoutMs: 10_000 },
    );
    const { code, at } = await closed;
    expect(code).toBe(4401);
    expect(connectedAt).toBeGreaterThan(0);
    expect(at - connectedAt).toBeGreaterThan(200);
    const result = await run;
    expect((result.errors[0] as { code?: number }).code).toBe(4401);
    // Signing in again works at once.
    const fresh = herald.ws(await herald.token('alice'));
    const me = await collect<{ id: string }>(fresh, MeDocument, {}, { field: 'me' });
    expect(me.items).toEqual([{ id: 'alice', roles: [], projects: [] }]);
  });
});

describe('me', () => {
  it('returns sub, roles and projects from the token over HTTP and graphql-ws', async () => {
    const token = await herald.token({ sub: 'carol@example.com', roles: ['admin', 'ops'], projects: ['apollo', 'p-2'] });
    const expected = { id: 'carol@example.com', roles: ['admin', 'ops'], projects: ['apollo', 'p-2'] };
    const { status, body } = await herald.http(token, MeDocument);
    expect(status).toBe(200);
    expect(body).toEqual({ data: { me: expected } });
    const ws = await collect(herald.ws(token), MeDocument, {}, { field: 'me' });
    expect(ws.items).toEqual([expected]);
    const plain = await herald.http(await herald.token('dave'), MeDocument);
    expect(plain.body.data!.me).toEqual({ id: 'dave', roles: [], projects: [] });
  });
});

describe('ownership', () => {
  it("refuses bob alice's file: fileProgress (ws and SSE), recentUpdates, job, cancelJob, and startQuery over it", async () => {
    const { fileId, cursor } = await startFile(alice);
    const owner = await watchFile(herald.ws(alice), fileId, cursor);
    expect(owner.completed).toBe(true);

    const overWs = await watchFile(herald.ws(bob), fileId);
    expect(overWs.items).toEqual([]);
    expect(codes(overWs.errors)).toEqual(['FORBIDDEN']);
    const overSse = await watchFile(herald.sse(bob), fileId);
    expect(overSse.items).toEqual([]);
    expect(codes(overSse.errors)).toEqual(['FORBIDDEN']);

    const recent = await herald.http(bob, RecentUpdatesDocument, { kind: 'FILE', id: fileId });
    expect(recent.body.data ?? null).toBeNull();
    expect(codes(recent.body)).toEqual(['FORBIDDEN']);

    const job = await herald.http(bob, JobDocument, { id: fileId });
    expect(job.body.data?.job ?? null).toBeNull();
    expect(codes(job.body)).toEqual(['FORBIDDEN']);

    const cancel = await herald.http(bob, CancelJobDocument, { id: fileId });
    expect(cancel.body.data ?? null).toBeNull();
    expect(codes(cancel.body)).toEqual(['FORBIDDEN']);

    const query = await herald.http(bob, StartQueryDocument, { input: { question: 'What is Herald?', fileIds: [fileId] } });
    expect(query.body.data ?? null).toBeNull();
    expect(codes(query.body)).toEqual(['FORBIDDEN']);

    // Alice still sees it all, and bob's attempts changed nothing.
    const mine = await herald.http(alice, JobDocument, { id: fileId });
    expect(mine.body.data!.job).toMatchObject({ id: fileId, state: 'COMPLETED' });
    const history = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: fileId, limit: 100 });
    expect(history.body.data!.recentUpdates.map((u) => u.seq)).toEqual(owner.items.map((u) => u.seq));
  });

  it("refuses bob alice's query too", async () => {
    const { fileId, cursor } = await startFile(alice);
    await watchFile(herald.ws(alice), fileId, cursor);
    const { body } = await herald.http(alice, StartQueryDocument, { input: { question: 'What is Herald?', fileIds: [fileId] } });
    const queryId = body.data!.startQuery.queryId;
    const run = await collect(herald.ws(bob), QueryProgressDocument, { queryId }, { field: 'queryProgress' });
    expect(run.items).toEqual([]);
    expect(codes(run.errors)).toEqual(['FORBIDDEN']);
    expect(codes((await herald.http(bob, RecentUpdatesDocument, { kind: 'QUERY', id: queryId })).body)).toEqual(['FORBIDDEN']);
    expect(codes((await herald.http(bob, CancelJobDocument, { id: queryId })).body)).toEqual(['FORBIDDEN']);
  });

  it('answers NOT_FOUND for an unknown but well-formed id', async () => {
    const run = await watchFile(herald.ws(alice), UNKNOWN_ID);
    expect(run.items).toEqual([]);
    expect(codes(run.errors)).toEqual(['NOT_FOUND']);
    const sse = await watchFile(herald.sse(alice), UNKNOWN_ID);
    expect(codes(sse.errors)).toEqual(['NOT_FOUND']);
    const queryRun = await collect(herald.ws(alice), QueryProgressDocument, { queryId: UNKNOWN_ID }, { field: 'queryProgress' });
    expect(codes(queryRun.errors)).toEqual(['NOT_FOUND']);
    expect(codes((await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: UNKNOWN_ID })).body)).toEqual([
      'NOT_FOUND',
    ]);
    expect(codes((await herald.http(alice, CancelJobDocument, { id: UNKNOWN_ID })).body)).toEqual(['NOT_FOUND']);
    const query = await herald.http(alice, StartQueryDocument, { input: { question: 'What is Herald?', fileIds: [UNKNOWN_ID] } });
    expect(codes(query.body)).toEqual(['NOT_FOUND']);
    const job = await herald.http(alice, JobDocument, { id: UNKNOWN_ID });
    expect(job.body.data).toEqual({ job: null });
    expect(codes(job.body)).toEqual(['NOT_FOUND']);
  });

  it('answers NOT_FOUND when a file id is used as a query id (and the other way round)', async () => {
    const { fileId, cursor } = await startFile(alice);
    await watchFile(herald.ws(alice), fileId, cursor);
    const run = await collect(herald.ws(alice), QueryProgressDocument, { queryId: fileId }, { field: 'queryProgress' });
    expect(codes(run.errors)).toEqual(['NOT_FOUND']);
    expect(codes((await herald.http(alice, RecentUpdatesDocument, { kind: 'QUERY', id: fileId })).body)).toEqual(['NOT_FOUND']);
  });

  it("lets a member of the file's project watch it, and nobody outside the project", async () => {
    const { fileId, cursor } = await startFile(alice, 'apollo');
    const carol = await herald.token({ sub: 'carol', projects: ['apollo'] });

    const [owner, member] = await Promise.all([
      watchFile(herald.ws(alice), fileId, cursor),
      watchFile(herald.sse(carol), fileId, cursor),
    ]);
    expect(owner.completed).toBe(true);
    expect(member.errors).toEqual([]);
    expect(member.completed).toBe(true);
    expect(member.items).toEqual(owner.items);
    expect(member.items.at(-1)!.event).toBe('processing_completed');

    const recent = await herald.http(carol, RecentUpdatesDocument, { kind: 'FILE', id: fileId, limit: 100 });
    expect(recent.body.errors).toBeUndefined();
    expect(recent.body.data!.recentUpdates.map((u) => u.seq)).toEqual(owner.items.map((u) => u.seq));
    const job = await herald.http(carol, JobDocument, { id: fileId });
    expect(job.body.data!.job).toMatchObject({ id: fileId, state: 'COMPLETED' });

    // bob is in another project: still FORBIDDEN.
    const outsider = await watchFile(herald.ws(bob), fileId);
    expect(codes(outsider.errors)).toEqual(['FORBIDDEN']);
    expect(codes((await herald.http(bob, JobDocument, { id: fileId })).body)).toEqual(['FORBIDDEN']);
  });

  it("refuses to start a file or a query in a project you're not a member of", async () => {
    const file = await herald.http(bob, StartFileProcessingDocument, {
      input: { name: 'sneaky.md', content: DOCUMENT, projectId: 'apollo' },
    });
    expect(file.body.data ?? null).toBeNull();
    expect(codes(file.body)).toEqual(['FORBIDDEN']);
    expect(file.body.errors?.[0]?.message).toContain('apollo');

    const query = await herald.http(bob, StartQueryDocument, { input: { question: 'What is Herald?', projectId: 'apollo' } });
    expect(codes(query.body)).toEqual(['FORBIDDEN']);

    const watch = await collect(herald.ws(bob), ProjectProgressDocument, { projectId: 'apollo' }, { field: 'projectProgress' });
    expect(codes(watch.errors)).toEqual(['FORBIDDEN']);

    // A member may.
    const ok = await herald.http(bob, StartFileProcessingDocument, {
      input: { name: 'ok.md', content: DOCUMENT, projectId: 'gemini' },
    });
    expect(ok.body.errors).toBeUndefined();
  });
});
