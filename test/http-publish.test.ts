import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { TokenClaims } from '../src/auth/token.js';
import { startHerald, startInstances, type Herald } from './helpers/herald.js';
import { connect } from './helpers/redis.js';
import { collect, errorCodes } from './helpers/streams.js';

const redis = connect();
const started: Herald[] = [];
afterAll(async () => {
  await Promise.all(started.map((h) => h.stop()));
  redis.disconnect();
});

async function fresh(env: Record<string, string> = {}): Promise<Herald> {
  const h = await startHerald(env, { workers: false });
  started.push(h);
  return h;
}

const ADMIN: TokenClaims = { sub: 'root', roles: ['admin'] };

const CREATE = `mutation($name: String!, $scopes: [ServiceKeyScopeInput!]!) {
  createServiceKey(name: $name, scopes: $scopes) { secret key { id name createdBy scopes { action projectId } } }
}`;
const LIST = '{ serviceKeys { id name createdBy createdAt scopes { action projectId } } }';
const REVOKE = 'mutation($id: ID!) { revokeServiceKey(id: $id) }';

interface Scope {
  action: 'PUBLISH_FILES' | 'PUBLISH_QUERIES' | 'SEND_NOTIFICATIONS';
  projectId?: string | null;
}

interface Created {
  createServiceKey: { secret: string; key: { id: string; name: string; createdBy: string; scopes: Scope[] } };
}

async function createKey(h: Herald, scopes: Scope[], name = 'converter'): Promise<{ id: string; secret: string }> {
  const { body } = await h.http<Created>(await h.token(ADMIN), CREATE, { name, scopes });
  expect(body.errors).toBeUndefined();
  const { secret, key } = body.data!.createServiceKey;
  return { id: key.id, secret };
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { errors?: Array<{ message: string; extensions: Record<string, unknown> }> };
}

async function post(
  h: Herald,
  path: string,
  secret: string | null,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(h.url + path, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(secret === null ? {} : { authorization: `Bearer ${secret}` }),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Answer['body'] };
}

const codeOf = (answer: Answer) => answer.body.errors?.[0]?.extensions.code;
const extensionsOf = (answer: Answer) => answer.body.errors?.[0]?.extensions ?? {};

async function registerFile(h: Herald, secret: string, spec: Record<string, unknown> = { ownerId: 'alice' }): Promise<string> {
  const answer = await post(h, '/v1/files', secret, spec);
  expect(answer.status).toBe(201);
  return answer.body.id as string;
}

const update = (event: string, status: string, progress: number | null = null) => ({ event, status, progress });

describe('service keys', () => {
  it('are created, listed without secrets, and revoked by admins only', async () => {
    const h = await fresh();
    const { id, secret } = await createKey(h, [{ action: 'PUBLISH_FILES', projectId: 'demo' }], 'celery');
    expect(secret).toMatch(/^hsk_[A-Za-z0-9_-]{43}$/);

    const listed = await h.http<{ serviceKeys: Array<Record<string, unknown>> }>(await h.token(ADMIN), LIST);
    expect(listed.body.data!.serviceKeys).toEqual([
      expect.objectContaining({
        id,
        name: 'celery',
        createdBy: 'root',
        scopes: [{ action: 'PUBLISH_FILES', projectId: 'demo' }],
      }),
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(secret);
    // Redis holds its hash only.
    const stored = await redis.hgetall(`${h.config.keyPrefix}{service_keys}:records`);
    expect(JSON.stringify(stored)).not.toContain(secret);

    const user = await h.token({ sub: 'mallory', projects: ['demo'] });
    for (const [query, variables] of [
      [CREATE, { name: 'mine', scopes: [{ action: 'SEND_NOTIFICATIONS' }] }],
      [LIST, {}],
      [REVOKE, { id }],
    ] as const) {
      const { body } = await h.http(user, query, variables);
      expect(errorCodes(body.errors)).toEqual(['FORBIDDEN']);
    }
    expect((await post(h, '/v1/files', secret, { ownerId: 'alice', projectId: 'demo' })).status).toBe(201);

    const admin = await h.token(ADMIN);
    expect((await h.http(admin, REVOKE, { id })).body.data).toEqual({ revokeServiceKey: true });
    expect(errorCodes((await h.http(admin, REVOKE, { id })).body.errors)).toEqual(['NOT_FOUND']);
    expect((await h.http<{ serviceKeys: unknown[] }>(admin, LIST)).body.data!.serviceKeys).toEqual([]);
  });

  it('refuses bad names and scopes', async () => {
    const h = await fresh();
    const admin = await h.token(ADMIN);
    const cases = [
      { name: ' ', scopes: [{ action: 'PUBLISH_FILES' }] },
      { name: 'x', scopes: [] },
      { name: 'x', scopes: [{ action: 'PUBLISH_FILES', projectId: 'no spaces' }] },
      { name: 'x', scopes: [{ action: 'DELETE_EVERYTHING' }] },
    ];
    for (const variables of cases) {
      expect(errorCodes((await h.http(admin, CREATE, variables)).body.errors)).toEqual(['BAD_USER_INPUT']);
    }
  });

  it('stops working on every instance as soon as it is revoked', async () => {
    const [a, b] = await startInstances(2);
    started.push(a, b);
    const { id, secret } = await createKey(a, [{ action: 'PUBLISH_FILES' }]);
    const file = await registerFile(b, secret);
    expect((await post(b, `/v1/files/${file}/updates`, secret, update('start', 'PROCESSING', 0))).status).toBe(201);

    expect((await a.http(await a.token(ADMIN), REVOKE, { id })).body.errors).toBeUndefined();
    for (const h of [a, b]) {
      const answer = await post(h, `/v1/files/${file}/updates`, secret, update('step', 'PROCESSING', 50));
      expect(answer.status).toBe(401);
      expect(codeOf(answer)).toBe('UNAUTHENTICATED');
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('are required, and an access token is not one', async () => {
    const h = await fresh();
    expect(codeOf(await post(h, '/v1/files', null, { ownerId: 'alice' }))).toBe('UNAUTHENTICATED');
    const jwt = await h.token(ADMIN);
    const answer = await post(h, '/v1/files', jwt, { ownerId: 'alice' });
    expect([answer.status, codeOf(answer)]).toEqual([401, 'UNAUTHENTICATED']);
  });
});

describe('scopes', () => {
  it('allow only the actions, and the project, a key was given', async () => {
    const h = await fresh();
    const files = await createKey(h, [{ action: 'PUBLISH_FILES' }]);
    const demo = await createKey(h, [
      { action: 'PUBLISH_FILES', projectId: 'demo' },
      { action: 'SEND_NOTIFICATIONS', projectId: 'demo' },
    ]);
    const anyNotifications = await createKey(h, [{ action: 'SEND_NOTIFICATIONS' }]);

    const refused = async (path: string, secret: string, body: unknown) => {
      const answer = await post(h, path, secret, body);
      expect([answer.status, codeOf(answer)], `${path} ${JSON.stringify(body)}`).toEqual([403, 'FORBIDDEN']);
    };
    await refused('/v1/queries', files.secret, { ownerId: 'alice' });
    await refused('/v1/notifications', files.secret, { target: { kind: 'USER', id: 'alice' }, title: 'hi' });
    await refused('/v1/files', demo.secret, { ownerId: 'alice' });
    await refused('/v1/files', demo.secret, { ownerId: 'alice', projectId: 'other' });
    await refused('/v1/notifications', demo.secret, { target: { kind: 'USER', id: 'alice' }, title: 'hi' });
    await refused('/v1/notifications', demo.secret, { target: { kind: 'PROJECT', id: 'other' }, title: 'hi' });

    const outside = await registerFile(h, files.secret, { ownerId: 'alice', projectId: 'other' });
    await refused(`/v1/files/${outside}/updates`, demo.secret, update('step', 'PROCESSING'));
    const inside = await registerFile(h, demo.secret, { ownerId: 'alice', projectId: 'demo' });
    expect((await post(h, `/v1/files/${inside}/updates`, demo.secret, update('step', 'PROCESSING'))).status).toBe(201);
    const sent = await post(h, '/v1/notifications', demo.secret, { target: { kind: 'PROJECT', id: 'demo' }, title: 'Done' });
    expect(sent.status).toBe(201);
    expect(sent.body).toMatchObject({ title: 'Done', level: 'INFO', target: { kind: 'PROJECT', id: 'demo' } });
    const global = await post(h, '/v1/notifications', anyNotifications.secret, {
      target: { kind: 'GLOBAL' },
      title: 'Maintenance',
    });
    expect(global.status).toBe(201);
  });
});

describe('requests', () => {
  it('are refused with the contract codes and the right statuses', async () => {
    const h = await fresh({ PUBLISH_MAX_BODY_BYTES: '2048' });
    const { secret } = await createKey(h, [{ action: 'PUBLISH_FILES' }, { action: 'SEND_NOTIFICATIONS' }]);
    const file = await registerFile(h, secret, { id: 'report-1', ownerId: 'alice' });
    const path = `/v1/files/${file}/updates`;

    const expectRefusal = async (answer: Promise<Answer>, status: number, code: string, extensions = {}) => {
      const { status: got, body } = await answer;
      expect({ status: got, code: body.errors?.[0]?.extensions.code }).toEqual({ status, code });
      expect(body.errors?.[0]?.extensions).toMatchObject(extensions);
    };
    await expectRefusal(post(h, path, secret, '{not json'), 400, 'BAD_USER_INPUT');
    await expectRefusal(post(h, path, secret, [1, 2]), 400, 'BAD_USER_INPUT');
    await expectRefusal(post(h, path, secret, update('step', 'DONE')), 400, 'BAD_USER_INPUT', { argument: 'status' });
    await expectRefusal(post(h, path, secret, update('step', 'PROCESSING', 150)), 400, 'BAD_USER_INPUT', {
      argument: 'progress',
    });
    await expectRefusal(post(h, path, secret, { ...update('step', 'PROCESSING'), seq: 7 }), 400, 'BAD_USER_INPUT');
    await expectRefusal(post(h, path, secret, update('', 'PROCESSING')), 400, 'BAD_USER_INPUT', { argument: 'event' });
    await expectRefusal(post(h, '/v1/files', secret, { ownerId: 'bad owner' }), 400, 'BAD_USER_INPUT', {
      argument: 'ownerId',
    });
    await expectRefusal(
      post(h, '/v1/notifications', secret, { target: { kind: 'USER', id: 'alice' }, title: '  ' }),
      400,
      'BAD_USER_INPUT',
      {
        argument: 'input.title',
      },
    );
    await expectRefusal(post(h, '/v1/notifications', secret, { target: { kind: 'USER' }, title: 'hi' }), 400, 'BAD_USER_INPUT');
    await expectRefusal(post(h, path, secret, update('step', 'PROCESSING'), { 'idempotency-key': 'é' }), 400, 'BAD_USER_INPUT');
    await expectRefusal(
      post(h, path, secret, { ...update('step', 'PROCESSING'), message: 'x'.repeat(4096) }),
      413,
      'BAD_USER_INPUT',
    );
    const streamed = await fetch(h.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: new Blob(Array(8).fill('x'.repeat(1024))).stream(),
      duplex: 'half',
    });
    expect([streamed.status, ((await streamed.json()) as Answer['body']).errors?.[0]?.extensions.code]).toEqual([
      413,
      'BAD_USER_INPUT',
    ]);
    await expectRefusal(post(h, '/v1/files/nope/updates', secret, update('step', 'PROCESSING')), 404, 'NOT_FOUND');
    await expectRefusal(post(h, `/v1/queries/${file}/updates`, secret, update('step', 'PROCESSING')), 403, 'FORBIDDEN');
    await expectRefusal(post(h, '/v1/elsewhere', secret, {}), 404, 'NOT_FOUND');
    await expectRefusal(post(h, '/v1/files', secret, { id: 'report-1', ownerId: 'mallory' }), 409, 'BAD_USER_INPUT', {
      reason: 'ID_TAKEN',
    });
    expect((await post(h, '/v1/files', secret, { id: 'report-1', ownerId: 'alice' })).status).toBe(200);
    const get = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${secret}` } });
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);

    // Nothing refused was stored; a terminal update ends the stream, and the next append is a conflict.
    const done = await post(h, path, secret, update('processing_completed', 'COMPLETED', 100));
    expect(done.body).toMatchObject({ seq: 1, kind: 'file', id: file, update: { status: 'COMPLETED', progress: 100 } });
    await expectRefusal(post(h, path, secret, update('late', 'PROCESSING')), 409, 'BAD_USER_INPUT', { reason: 'STREAM_ENDED' });
    // The registration kept its first owner.
    expect(await redis.hget(`${h.config.keyPrefix}resource:{${file}}`, 'ownerId')).toBe('alice');
  });

  it('are rate limited per key, with Retry-After', async () => {
    const h = await fresh({ PUBLISH_REQUESTS_PER_MINUTE: '3' });
    const limited = await createKey(h, [{ action: 'PUBLISH_FILES' }]);
    const other = await createKey(h, [{ action: 'PUBLISH_FILES' }]);
    for (let i = 0; i < 3; i += 1) expect((await post(h, '/v1/files', limited.secret, { ownerId: 'alice' })).status).toBe(201);
    const answer = await post(h, '/v1/files', limited.secret, { ownerId: 'alice' });
    expect([answer.status, codeOf(answer)]).toEqual([429, 'RATE_LIMITED']);
    const retryAfter = Number(answer.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(extensionsOf(answer)).toMatchObject({ limit: 'publish_requests_per_minute', retryAfterSeconds: retryAfter });
    expect((await post(h, '/v1/files', other.secret, { ownerId: 'alice' })).status).toBe(201);
  });
});

describe('Idempotency-Key', () => {
  it('stores concurrent retries of an append once and answers each with the first answer', async () => {
    const h = await fresh();
    const { secret } = await createKey(h, [{ action: 'PUBLISH_FILES' }]);
    const file = await registerFile(h, secret);
    const path = `/v1/files/${file}/updates`;
    const headers = { 'idempotency-key': 'job-42-step-1' };

    const answers = await Promise.all(
      Array.from({ length: 8 }, () => post(h, path, secret, update('step', 'PROCESSING', 10), headers)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true')).toHaveLength(7);
    expect(answers[0]!.body).toMatchObject({ seq: 1 });

    // The kept answer gone (expired, or its instance died before keeping it): the append id still finds the entry.
    for (const key of await redis.keys(`${h.config.keyPrefix}idempotency:*`)) await redis.del(key);
    const again = await post(h, path, secret, update('step', 'PROCESSING', 10), headers);
    expect([again.status, again.body.seq, again.body.cursor]).toEqual([201, 1, answers[0]!.body.cursor]);

    const next = await post(h, path, secret, update('step', 'PROCESSING', 20), { 'idempotency-key': 'job-42-step-2' });
    expect(next.body.seq).toBe(2);
    expect(await redis.zcard(`${h.config.keyPrefix}recent_updates:{file:${file}}`)).toBe(2);

    const reused = await post(h, path, secret, update('other', 'PROCESSING', 30), headers);
    expect([reused.status, extensionsOf(reused).reason]).toEqual([409, 'IDEMPOTENCY_KEY_REUSED']);
  });

  it('sends a notification once however many concurrent retries, and replays registrations and refusals', async () => {
    const h = await fresh();
    const { secret } = await createKey(h, [{ action: 'PUBLISH_FILES' }, { action: 'SEND_NOTIFICATIONS' }]);
    const headers = { 'idempotency-key': 'notify-once' };
    const body = { target: { kind: 'USER', id: 'bob' }, title: 'Your export is ready', level: 'SUCCESS' };
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(h, '/v1/notifications', secret, body, headers)));
    expect(new Set(answers.map((a) => `${a.status} ${JSON.stringify(a.body)}`)).size).toBe(1);
    const { body: inbox } = await h.http<{ unreadNotificationCount: number }>(
      await h.token('bob'),
      '{ unreadNotificationCount }',
    );
    expect(inbox.data!.unreadNotificationCount).toBe(1);
    // With the kept answer gone (the first try's instance died before keeping it), the retry runs
    // again: the send id derived from the key finds the notification sent, and sends nothing.
    for (const key of await redis.keys(`${h.config.keyPrefix}idempotency:*`)) await redis.del(key);
    const resent = await post(h, '/v1/notifications', secret, body, headers);
    expect([resent.status, resent.body]).toEqual([201, answers[0]!.body]);
    const { body: after } = await h.http<{ unreadNotificationCount: number }>(
      await h.token('bob'),
      '{ unreadNotificationCount }',
    );
    expect(after.data!.unreadNotificationCount).toBe(1);

    const register = { 'idempotency-key': 'register-once' };
    const first = await post(h, '/v1/files', secret, { ownerId: 'bob' }, register);
    const retry = await post(h, '/v1/files', secret, { ownerId: 'bob' }, register);
    expect([first.status, retry.status, retry.body]).toEqual([201, 201, first.body]);
    // With the kept answer gone, the retry runs again: its id comes from the key, so it finds its own registration.
    for (const key of await redis.keys(`${h.config.keyPrefix}idempotency:*`)) await redis.del(key);
    const rerun = await post(h, '/v1/files', secret, { ownerId: 'bob' }, register);
    expect([rerun.status, rerun.body.id]).toEqual([200, first.body.id]);

    const refusal = { 'idempotency-key': 'bad-once' };
    const bad = await post(h, '/v1/files', secret, { ownerId: 'no spaces' }, refusal);
    const badAgain = await post(h, '/v1/files', secret, { ownerId: 'no spaces' }, refusal);
    expect([bad.status, badAgain.status, badAgain.headers.get('idempotent-replayed')]).toEqual([400, 400, 'true']);
  });
});

const examples = fileURLToPath(new URL('../examples/python/', import.meta.url));
/** Debian's python3 (.ci/run installs it): the example must run on a stock interpreter. */
const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

function python(args: string[], env: Record<string, string>) {
  return run(PYTHON, args, {
    cwd: examples,
    env: { PATH: process.env.PATH ?? '', PYTHONDONTWRITEBYTECODE: '1', ...env },
    timeout: 60_000,
  });
}

interface ProjectUpdate {
  update: { __typename: string; id: string; seq: number; event: string; status: string; progress: number | null };
}

describe('the Python example', () => {
  it('publishes a whole job that a graphql-ws subscriber receives in order, once each; a retry stores nothing twice', async () => {
    const h = await fresh();
    const { secret } = await createKey(h, [{ action: 'PUBLISH_FILES', projectId: 'demo' }]);
    const env = { HERALD_URL: h.url, HERALD_SERVICE_KEY: secret };
    const client = h.ws(await h.token({ sub: 'kim', projects: ['demo'] }));
    let ready = () => {};
    const subscribed = new Promise<void>((resolve) => (ready = resolve));
    client.on('connected', () => setTimeout(ready, 200));
    const watching = collect<{ projectProgress: ProjectUpdate }['projectProgress']>(
      client,
      `subscription { projectProgress(projectId: "demo") {
        update { __typename ... on FileUpdate { id: fileId } seq event status progress }
      } }`,
      {},
      { field: 'projectProgress', until: (items) => items.some((i) => i.update.status === 'COMPLETED'), timeoutMs: 60_000 },
    );
    // Live by then in practice; a slower subscribe would still get every update, replayed first
    // (REPLAY_ON_CONNECT is 10), so the assertions hold either way.
    await subscribed;

    const { stdout } = await python(['publish_job.py', '--owner', 'alice', '--project', 'demo', '--steps', '4'], env);
    const [record, ...entries] = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(record).toMatchObject({ kind: 'file', ownerId: 'alice', projectId: 'demo' });
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);

    const { items } = await watching;
    expect(items.map((i) => [i.update.seq, i.update.event, i.update.status])).toEqual([
      [1, 'processing_started', 'PROCESSING'],
      [2, 'step_done', 'PROCESSING'],
      [3, 'step_done', 'PROCESSING'],
      [4, 'step_done', 'PROCESSING'],
      [5, 'step_done', 'PROCESSING'],
      [6, 'processing_completed', 'COMPLETED'],
    ]);
    expect(new Set(items.map((i) => i.update.id))).toEqual(new Set([record!.id]));

    const retry = `
import json
from herald_publish import HeraldPublisher
publisher = HeraldPublisher.from_env()
file = publisher.register("file", owner_id="alice", project_id="demo")
first = publisher.append("file", file["id"], "step_done", "PROCESSING", progress=50, idempotency_key="task-7-step-1")
again = publisher.append("file", file["id"], "step_done", "PROCESSING", progress=50, idempotency_key="task-7-step-1")
print(json.dumps({"id": file["id"], "seqs": [first["seq"], again["seq"]]}))
`;
    const retried = JSON.parse((await python(['-c', retry], env)).stdout) as { id: string; seqs: number[] };
    expect(retried.seqs).toEqual([1, 1]);
    expect(await redis.zcard(`${h.config.keyPrefix}recent_updates:{project:demo}:file:${retried.id}`)).toBe(1);
  });
});
