import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { persistedOperations } from '../scripts/persisted-operations.js';
import { signToken } from '../src/auth/token.js';
import { tokenCommand } from '../src/cli/token.js';
import { nth } from './helpers/elements.js';
import { clientsFor, TEST_SECRET, type HeraldClients } from './helpers/herald.js';
import { notificationKeys } from '../src/notifications/keys.js';
import { exitOf, spawnEntry, startCluster, waitForOutput, type Cluster } from './helpers/processes.js';
import { connect, redisUrl, uniquePrefix } from './helpers/redis.js';
import { collect, errorCodes } from './helpers/streams.js';

const INTROSPECTION = '{ __schema { queryType { name } } }';
const secret = () => randomBytes(32).toString('base64url');

interface Api {
  cluster: Cluster<1, 0>;
  clients: HeraldClients;
  keyPrefix: string;
  token: string;
}

/** An API process (src/main.ts) with `settings`, signing its tokens with a secret of its own. */
async function startApi(settings: Record<string, string>): Promise<Api> {
  const key = secret();
  const keyPrefix = uniquePrefix();
  const cluster = await startCluster({ JWT_SECRET: key, KEY_PREFIX: keyPrefix, ...settings }, { apis: 1, workers: 0 });
  const clients = clientsFor(nth(cluster.apiUrls, 0));
  return { cluster, clients, keyPrefix, token: await signToken(key, { sub: 'ops' }) };
}

async function graphiql(api: Api): Promise<{ status: number; html: boolean }> {
  const response = await fetch(`${api.clients.url}/graphql`, { headers: { accept: 'text/html' } });
  const text = await response.text();
  return { status: response.status, html: /<html/i.test(text) && text.includes('Herald') };
}

describe('NODE_ENV=production', () => {
  let production: Api;
  let enabled: Api;
  let development: Api;

  beforeAll(async () => {
    [production, enabled, development] = await Promise.all([
      startApi({ NODE_ENV: 'production' }),
      startApi({ NODE_ENV: 'production', GRAPHIQL: 'true', INTROSPECTION: 'true' }),
      startApi({ NODE_ENV: 'development' }),
    ]);
  }, 120_000);
  afterAll(async () => {
    for (const api of [production, enabled, development]) {
      await api?.clients.dispose();
      await api?.cluster.stop();
    }
  });

  it('serves no GraphiQL unless GRAPHIQL=true', async () => {
    expect((await graphiql(production)).html).toBe(false);
    expect(await graphiql(enabled)).toEqual({ status: 200, html: true });
    expect(await graphiql(development)).toEqual({ status: 200, html: true });
  });

  it('refuses introspection over HTTP and WebSocket unless INTROSPECTION=true', async () => {
    const refused = await production.clients.http(production.token, INTROSPECTION);
    expect(refused.status).toBe(400);
    expect(new Set(errorCodes(refused.body))).toEqual(new Set(['BAD_USER_INPUT']));
    expect(refused.body.errors?.[0]?.message).toMatch(/introspection/i);
    const overWs = await collect(production.clients.ws(production.token), INTROSPECTION, {}, { field: '__schema' });
    expect(new Set(errorCodes(overWs.errors))).toEqual(new Set(['BAD_USER_INPUT']));
    // Ordinary queries, __typename included, still work.
    const me = await production.clients.http(production.token, '{ __typename me { id } }');
    expect(me.body).toEqual({ data: { __typename: 'Query', me: { id: 'ops' } } });

    for (const api of [enabled, development]) {
      const { body } = await api.clients.http(api.token, INTROSPECTION);
      expect(body).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
    }
  });

  it('tells clients nothing of an unexpected error but its code; NODE_ENV=development adds its message', async () => {
    const redis = connect();
    try {
      for (const api of [production, development]) {
        // A key of the wrong type makes reading the inbox fail inside Redis: an error no client input explains.
        await redis.set(notificationKeys(api.keyPrefix).readSet('ops'), 'not a set');
      }
    } finally {
      redis.disconnect();
    }
    const masked = await production.clients.http(production.token, '{ unreadNotificationCount }');
    expect(masked.body.errors).toEqual([
      {
        message: 'Unexpected error.',
        locations: expect.any(Array),
        path: ['unreadNotificationCount'],
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      },
    ]);
    expect(JSON.stringify(masked.body)).not.toMatch(/WRONGTYPE|at .*\.ts/);

    const detailed = await development.clients.http(development.token, '{ unreadNotificationCount }');
    expect(errorCodes(detailed.body)).toEqual(['INTERNAL_SERVER_ERROR']);
    const extensions = detailed.body.errors?.[0]?.extensions as { originalError?: { message: string } };
    expect(extensions.originalError?.message).toMatch(/WRONGTYPE/);
  });
});

describe('PERSISTED_OPERATIONS=only', () => {
  let api: Api;
  const allowList = Object.entries(persistedOperations());
  const hashOf = (name: string) =>
    nth(
      allowList.find(([, text]) => text.startsWith(`query ${name} `))!,
      0,
    );
  const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

  beforeAll(async () => {
    api = await startApi({ NODE_ENV: 'production', PERSISTED_OPERATIONS: 'only' });
  }, 120_000);
  afterAll(async () => {
    await api?.clients.dispose();
    await api?.cluster.stop();
  });

  async function post(body: Record<string, unknown>) {
    const response = await fetch(`${api.clients.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${api.token}` },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: Array<{ message: string }> } };
  }

  it('runs an operation of the allow-list named by its hash, over HTTP, WebSocket and SSE', async () => {
    expect(await post({ extensions: persisted(hashOf('Me')) })).toEqual({
      status: 200,
      body: { data: { me: { id: 'ops', roles: [], projects: [] } } },
    });
    for (const client of [api.clients.ws(api.token), api.clients.sse(api.token)]) {
      const result = await new Promise<unknown>((resolve, reject) => {
        let last: unknown;
        client.subscribe(
          { query: '', extensions: persisted(hashOf('Me')) },
          { next: (value) => (last = value), error: reject, complete: () => resolve(last) },
        );
      });
      expect(result).toEqual({ data: { me: { id: 'ops', roles: [], projects: [] } } });
    }
  });

  it('refuses any other document, and an unknown hash, with BAD_USER_INPUT on HTTP and WebSocket', async () => {
    for (const [body, message] of [
      [{ query: '{ me { id } }' }, /only persisted operations are accepted/],
      [{ query: '{ me { id } }', extensions: persisted('0'.repeat(64)) }, /no persisted operation has the hash 0{64}/],
    ] as const) {
      const refused = await post(body);
      expect(refused.status).toBe(400);
      expect(errorCodes(refused.body)).toEqual(['BAD_USER_INPUT']);
      expect(refused.body.errors?.[0]?.message).toMatch(message);
      const overWs = await collect(api.clients.ws(api.token), body.query, {}, { field: 'me' });
      expect(errorCodes(overWs.errors)).toEqual(['BAD_USER_INPUT']);
    }
  });
});

describe('NODE_ENV=production refuses development settings at start-up', () => {
  const workdir = mkdtempSync(join(tmpdir(), 'herald-production-'));
  afterAll(() => rmSync(workdir, { recursive: true, force: true }));

  it.each([
    ['the test suite’s JWT_SECRET', { JWT_SECRET: TEST_SECRET }],
    ['no JWT_SECRET and no JWT_JWKS_URL', { JWT_SECRET: '' }],
  ])('the API exits 2 with %s', async (_name, settings) => {
    const api = spawnEntry('src/main.ts', { REDIS_URL: redisUrl(), PORT: '0', NODE_ENV: 'production', ...settings });
    expect((await exitOf(api)).code).toBe(2);
  });

  it('npm run dev exits 2 on the secret it keeps, and with a real secret makes no dev token and no GraphiQL', async () => {
    const env = { REDIS_URL: redisUrl(), KEY_PREFIX: uniquePrefix(), PORT: '0', NODE_ENV: 'production', JWT_SECRET: '' };
    const refused = spawnEntry('src/dev.ts', env, [], workdir);
    expect((await exitOf(refused)).code).toBe(2);

    const dev = spawnEntry('src/dev.ts', { ...env, JWT_SECRET: secret(), LOG_LEVEL: 'warn' }, [], workdir);
    let output = '';
    dev.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitForOutput(dev, 'Ctrl-C stops everything');
      expect(output).toContain('No dev token: NODE_ENV=production.');
      expect(output).not.toMatch(/GraphiQL|Dev token|eyJ/);
    } finally {
      await dev.stop();
    }
  });

  it('herald token refuses to mint a token', async () => {
    await expect(tokenCommand.run([], { NODE_ENV: 'production', JWT_SECRET: secret() })).rejects.toThrow(
      /not with NODE_ENV=production/,
    );
  });
});
