import { SignJWT, jwtVerify, type CryptoKey } from 'jose';
import { z } from 'zod';
import { ID_PATTERN } from '../ids.js';

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

const id = z.string().regex(ID_PATTERN, 'must be 1-128 letters, digits or _ . : @ -');
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

/**
 * Verifies HS256 access tokens with jose; the one place a token turns into a Viewer. A token that
 * `isRevoked` refuses is as invalid as an expired one, on every transport.
 */
export function createTokenVerifier(secret: string, isRevoked?: RevocationCheck) {
  /** Imported once, on first use: given the raw secret, jose imports an HMAC key for every token. */
  let secretKey: Promise<CryptoKey> | null = null;
  return async function verify(token: string | null): Promise<Viewer> {
    if (!token) throw new InvalidTokenError('missing access token');
    let payload: unknown;
    try {
      secretKey ??= crypto.subtle.importKey('raw', key(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      ({ payload } = await jwtVerify(token, await secretKey, { algorithms: ['HS256'] }));
    } catch (error) {
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
