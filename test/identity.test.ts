import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeDocument, RefreshTokenDocument } from '../src/client/generated.js';
import { freePort } from '../src/dev/redis-server.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

const ISSUER = 'https://id.herald.test/realms/herald';
const AUDIENCE = 'herald-api';
const PROJECTS_CLAIM = 'https://herald.test/projects';
/** Short enough for a test to wait it out before a rotated key is looked for again. */
const COOLDOWN_MS = 300;
const TIMEOUT_MS = 1_500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Algorithm = 'RS256' | 'ES256' | 'EdDSA';

interface SigningKey {
  alg: Algorithm;
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(alg: Algorithm, kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

interface ProviderClaims {
  sub: string;
  roles?: string[];
  projects?: string[];
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative for an expired token. */
  ttlSeconds?: number;
}

/** A token as Keycloak shapes it: roles under realm_access, projects under a namespaced claim (Auth0 style). */
function providerToken(key: SigningKey, claims: ProviderClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ realm_access: { roles: claims.roles ?? [] }, [PROJECTS_CLAIM]: claims.projects ?? [] })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(claims.issuer ?? ISSUER)
    .setAudience(claims.audience ?? AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (claims.ttlSeconds ?? 3_600))
    .sign(key.privateKey);
}

/** An identity provider's JWKS endpoint on loopback, serving whichever keys the test gives it. */
async function startJwksServer(keys: JWK[]): Promise<{ url: string; serve(keys: JWK[]): void; server: Server }> {
  let served = keys;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/jwks`, serve: (next) => (served = next), server };
}

/** A JWKS endpoint that accepts connections and never answers. */
async function startHangingServer(): Promise<{ url: string; server: Server }> {
  const server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/jwks`, server };
}

function providerEnv(jwksUrl: string): Record<string, string> {
  return {
    JWT_JWKS_URL: jwksUrl,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: `other-client, ${AUDIENCE}`,
    JWT_ROLES_CLAIM: 'realm_access.roles',
    JWT_PROJECTS_CLAIM: PROJECTS_CLAIM,
    JWT_JWKS_TIMEOUT_MS: String(TIMEOUT_MS),
    JWT_JWKS_COOLDOWN_MS: String(COOLDOWN_MS),
  };
}

/** `me` over graphql-ws, on a connection opened with `token`. */
async function meOverWebSocket(h: Herald, token: string) {
  const { items, errors } = await collect(h.ws(token), MeDocument, {}, { field: 'me', timeoutMs: 20_000 });
  expect(errors).toEqual([]);
  return items[0];
}

/** How the server closes a WebSocket whose connection_init carries `token`. */
function closeOf(h: Herald, token: string): Promise<{ code: number; reason: string }> {
  const client = h.ws(token, { lazy: false });
  return new Promise((resolve) =>
    client.on('closed', (event) => {
      const { code, reason } = event as { code: number; reason: string };
      resolve({ code, reason });
    }),
  );
}

function expectUnauthenticated(result: Awaited<ReturnType<Herald['http']>>, message: RegExp) {
  expect(result.status).toBe(401);
  expect(result.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect(result.body.errors?.[0]?.message).toMatch(message);
}

const ME = 'query { me { id roles projects expiresAt } }';

describe('tokens of an OpenID Connect provider (JWKS)', () => {
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let keys: Record<Algorithm, SigningKey>;
  let herald: Herald;

  beforeAll(async () => {
    keys = {
      RS256: await signingKey('RS256', 'rsa-1'),
      ES256: await signingKey('ES256', 'ec-1'),
      EdDSA: await signingKey('EdDSA', 'ed-1'),
    };
    jwks = await startJwksServer(Object.values(keys).map((key) => key.jwk));
    herald = await startHerald(providerEnv(jwks.url), { workers: false });
  });
  afterAll(async () => {
    await herald?.stop();
    jwks?.server.close();
  });

  it.each(['RS256', 'ES256', 'EdDSA'] as const)(
    'accepts a valid %s token over HTTP and graphql-ws, with roles and projects from the configured claims',
    async (alg) => {
      const token = await providerToken(keys[alg], { sub: `user-${alg}`, roles: ['admin'], projects: ['apollo'] });
      const viewer = { id: `user-${alg}`, roles: ['admin'], projects: ['apollo'] };
      const { status, body } = await herald.http(token, MeDocument);
      expect(status).toBe(200);
      expect(body.data?.me).toEqual(viewer);
      expect(await meOverWebSocket(herald, token)).toEqual(viewer);
    },
  );

  it("takes Auth0's subjects (auth0|…) as user ids: notifications reach one, and its read state works", async () => {
    const sub = 'auth0|5f7c8ec7c33c6c004bbafe82';
    const token = await providerToken(keys.RS256, { sub });
    const { body } = await herald.http(token, MeDocument);
    expect(body.data?.me.id).toBe(sub);
    const admin = await herald.token({ sub: 'root', roles: ['admin'] });
    const sent = await herald.http<{ sendNotification: { id: string } }>(
      admin,
      'mutation($input: SendNotificationInput!) { sendNotification(input: $input) { id } }',
      { input: { target: { kind: 'USER', id: sub }, title: 'Welcome' } },
    );
    expect(sent.body.errors).toBeUndefined();
    const unread = async () =>
      (await herald.http<{ unreadNotificationCount: number }>(token, '{ unreadNotificationCount }')).body.data
        ?.unreadNotificationCount;
    expect(await unread()).toBe(1);
    const marked = await herald.http<{ markNotificationsRead: number }>(
      token,
      'mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }',
      {
        ids: [sent.body.data!.sendNotification.id],
      },
    );
    expect(marked.body.errors).toBeUndefined();
    expect(marked.body.data?.markNotificationsRead).toBe(1);
    expect(await unread()).toBe(0);
  });

  it('refuses an expired token, a wrong audience and a wrong issuer with 401 over HTTP and 4401 over WebSocket', async () => {
    const cases: Array<[ProviderClaims, RegExp]> = [
      [{ sub: 'late', ttlSeconds: -60 }, /"exp" claim/],
      [{ sub: 'elsewhere', audience: 'another-api' }, /"aud" claim/],
      [{ sub: 'forged', issuer: 'https://evil.test/' }, /"iss" claim/],
    ];
    for (const [claims, message] of cases) {
      const token = await providerToken(keys.RS256, claims);
      expectUnauthenticated(await herald.http(token, MeDocument), message);
      const { code, reason } = await closeOf(herald, token);
      expect(code).toBe(4401);
      expect(reason).toMatch(message);
    }
  });

  it('still accepts HS256 tokens of JWT_SECRET beside the provider, and refuses an algorithm it does not take', async () => {
    const { body } = await herald.http(await herald.token({ sub: 'dev', roles: ['ops'] }), MeDocument);
    expect(body.data?.me).toEqual({ id: 'dev', roles: ['ops'], projects: [] });
    const hs384 = await new SignJWT({}).setProtectedHeader({ alg: 'HS384' }).setSubject('x').sign(new Uint8Array(48));
    expectUnauthenticated(await herald.http(hs384, MeDocument), /alg HS384 is not accepted \(HS256, RS256, ES256, EdDSA\)/);
  });

  it('accepts a key the provider rotates in, without a restart, once it is served', async () => {
    expect((await herald.http(await providerToken(keys.RS256, { sub: 'before' }), MeDocument)).status).toBe(200);
    const rotated = await signingKey('RS256', 'rsa-2');
    const token = await providerToken(rotated, { sub: 'after-rotation', roles: ['ops'] });
    await sleep(COOLDOWN_MS + 100);
    expectUnauthenticated(await herald.http(token, MeDocument), /no applicable key found in the JSON Web Key Set/);

    jwks.serve([...Object.values(keys).map((key) => key.jwk), rotated.jwk]);
    await sleep(COOLDOWN_MS + 100);
    const { status, body } = await herald.http(token, MeDocument);
    expect(status).toBe(200);
    expect(body.data?.me).toEqual({ id: 'after-rotation', roles: ['ops'], projects: [] });
    expect(await meOverWebSocket(herald, token)).toMatchObject({ id: 'after-rotation' });
  });

  it('refreshes a live WebSocket in-band with a provider token: the connection outlives the first token', async () => {
    const short = await providerToken(keys.ES256, { sub: 'carol', ttlSeconds: 2 });
    const client = herald.ws(short, { lazy: false });
    let closed = false;
    client.on('closed', () => (closed = true));
    expect(await collect(client, ME, {}, { field: 'me', timeoutMs: 20_000 })).toMatchObject({ items: [{ id: 'carol' }] });

    const long = await providerToken(keys.EdDSA, { sub: 'carol', projects: ['gemini'], ttlSeconds: 3_600 });
    const refreshed = await collect(client, RefreshTokenDocument, { token: long }, { field: 'refreshToken', timeoutMs: 20_000 });
    expect(refreshed.errors).toEqual([]);
    expect(refreshed.items[0]).toMatchObject({ id: 'carol', projects: ['gemini'] });

    await sleep(3_500);
    expect(closed).toBe(false);
    const after = await collect(client, ME, {}, { field: 'me', timeoutMs: 20_000 });
    expect(after.items[0]).toMatchObject({ id: 'carol', projects: ['gemini'] });
  });
});

describe('an identity provider out of reach', () => {
  let keys: SigningKey;
  let hanging: Awaited<ReturnType<typeof startHangingServer>>;
  const started: Herald[] = [];

  beforeAll(async () => {
    keys = await signingKey('RS256', 'rsa-1');
    hanging = await startHangingServer();
  });
  afterAll(async () => {
    for (const h of started) await h.stop();
    hanging?.server.closeAllConnections();
    hanging?.server.close();
  });

  async function heraldWith(jwksUrl: string): Promise<Herald> {
    const h = await startHerald(providerEnv(jwksUrl), { workers: false });
    started.push(h);
    return h;
  }

  it.each([
    ['down (nothing listens)', async () => `http://127.0.0.1:${await freePort()}/jwks`, /could not be fetched/],
    ['hanging (never answers)', async () => hanging.url, new RegExp(`did not arrive within ${TIMEOUT_MS} ms`)],
  ])(
    'JWKS endpoint %s: 401 over HTTP and 4401 over WebSocket, while HS256 tokens are served meanwhile',
    async (_name, url, message) => {
      const h = await heraldWith(await url());
      const token = await providerToken(keys, { sub: 'dana' });
      const refused = h.http(token, MeDocument);
      const closed = closeOf(h, token);
      // While those wait on the provider, a token that does not need it is answered.
      const { body } = await h.http(await h.token('dev'), MeDocument);
      expect(body.data?.me).toMatchObject({ id: 'dev' });

      expectUnauthenticated(await refused, message);
      const { code, reason } = await closed;
      expect(code).toBe(4401);
      expect(reason).toMatch(/JWT_JWKS_URL/);
    },
  );
});
