import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { ProviderSettings } from '../config.js';
import { ID_PATTERN, ID_RULE } from '../ids.js';

/** Who is calling, as their access token says. */
export interface Viewer {
  id: string;
  roles: string[];
  projects: string[];
  /** Seconds since the epoch when the token stops being valid; null when it never does. */
  expiresAt: number | null;
  /** Seconds since the epoch when the token was issued (`iat`); a revocation refuses tokens issued until it. */
  issuedAt: number | null;
}

const id = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);
const claims = z.object({
  sub: id,
  roles: z.array(z.string().min(1).max(128)).max(100).default([]),
  projects: z.array(id).max(1_000).default([]),
  exp: z.number().optional(),
  iat: z.number().optional(),
});

/** Raised for a missing, malformed, expired or wrongly signed token. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

function key(secret: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(secret);
}

/** Extracts the token from an `Authorization: Bearer <jwt>` value. */
export function bearerToken(header: unknown): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Says whether a valid token's user has been revoked since it was issued. */
export type RevocationCheck = (viewer: Viewer) => boolean | Promise<boolean>;

/** The algorithms an identity provider's keys may sign with: RSA, P-256 ECDSA and Ed25519. */
const PROVIDER_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

/** Which tokens are accepted: HS256 ones signed with `secret`, and those of an OpenID Connect provider. */
export interface TokenSettings {
  /** The HS256 key (JWT_SECRET); null accepts no HS256 token. */
  secret: string | null;
  /** The identity provider (JWT_JWKS_URL and friends); null accepts no provider token. */
  provider: ProviderSettings | null;
}

/**
 * The value at `path` in the claims: a claim of exactly that name first (Auth0's namespaced claims,
 * `https://example.com/roles`, have dots in their names), else the dotted path through nested
 * objects (Keycloak's `realm_access.roles`).
 */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** The provider's keys (fetched, cached and refreshed by jose) with the checks its tokens must pass. */
function createProviderCheck(provider: ProviderSettings) {
  const keys = createRemoteJWKSet(new URL(provider.jwksUrl), {
    timeoutDuration: provider.timeoutMs,
    cooldownDuration: provider.cooldownMs,
  });
  const options = { algorithms: PROVIDER_ALGORITHMS, issuer: provider.issuer, audience: provider.audience };
  return async (token: string): Promise<JWTPayload> => {
    const { payload } = await jwtVerify(token, keys, options).catch((error: unknown) => {
      if (error instanceof errors.JWKSTimeout) {
        throw new InvalidTokenError(
          `the identity provider's keys (JWT_JWKS_URL) did not arrive within ${provider.timeoutMs} ms: try again`,
        );
      }
      if (error instanceof errors.JOSEError) throw error;
      // Anything else is fetch's own failure: the provider is down or out of reach.
      const cause = (error as Error).cause as Error | undefined;
      throw new InvalidTokenError(
        `the identity provider's keys (JWT_JWKS_URL) could not be fetched (${cause?.message ?? (error as Error).message}): try again`,
      );
    });
    return {
      ...payload,
      roles: claimAt(payload, provider.rolesClaim),
      projects: claimAt(payload, provider.projectsClaim),
    };
  };
}

/** The HS256 check: the key is imported once, on first use (given the raw secret, jose imports one per token). */
function createSecretCheck(secret: string) {
  let secretKey: Promise<CryptoKey> | null = null;
  return async (token: string): Promise<JWTPayload> => {
    secretKey ??= crypto.subtle.importKey('raw', key(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    return (await jwtVerify(token, await secretKey, { algorithms: ['HS256'] })).payload;
  };
}

/**
 * Verifies access tokens with jose; the one place a token turns into a Viewer. The token header's
 * `alg` picks the check: HS256 against `settings.secret`, RS256, ES256 and EdDSA against the
 * provider's keys, with its issuer and audience and its roles and projects claims. A token that
 * `isRevoked` refuses is as invalid as an expired one, on every transport.
 */
export function createTokenVerifier(settings: TokenSettings, isRevoked?: RevocationCheck) {
  const bySecret = settings.secret === null ? null : createSecretCheck(settings.secret);
  const byProvider = settings.provider === null ? null : createProviderCheck(settings.provider);
  const accepted = [...(bySecret ? ['HS256'] : []), ...(byProvider ? PROVIDER_ALGORITHMS : [])];

  function checkFor(token: string) {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (error) {
      throw new InvalidTokenError(`invalid access token: ${(error as Error).message}`);
    }
    const check = alg === 'HS256' ? bySecret : alg && PROVIDER_ALGORITHMS.includes(alg) ? byProvider : null;
    if (!check) throw new InvalidTokenError(`invalid access token: alg ${String(alg)} is not accepted (${accepted.join(', ')})`);
    return check;
  }

  return async function verify(token: string | null): Promise<Viewer> {
    if (!token) throw new InvalidTokenError('missing access token');
    let payload: unknown;
    try {
      payload = await checkFor(token)(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      throw new InvalidTokenError(`invalid access token: ${(error as Error).message}`);
    }
    const parsed = claims.safeParse(payload);
    if (!parsed.success) {
      throw new InvalidTokenError(
        `invalid access token claims: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`,
      );
    }
    const { sub, roles, projects, exp, iat } = parsed.data;
    const viewer: Viewer = { id: sub, roles, projects, expiresAt: exp ?? null, issuedAt: iat ?? null };
    if (isRevoked && (await isRevoked(viewer))) throw new InvalidTokenError('access token revoked: sign in again');
    return viewer;
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

export interface TokenClaims {
  sub: string;
  roles?: string[];
  projects?: string[];
  /** Lifetime in seconds; default one day. */
  ttlSeconds?: number;
}

/** Mints an access token: for the dev runner, the CLI and tests. */
export async function signToken(secret: string, claims: TokenClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ roles: claims.roles ?? [], projects: claims.projects ?? [] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.ttlSeconds ?? 24 * 3600))
    .sign(key(secret));
}
