import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { execChecked } from '../redis.js';

/** What a service key may do: append to file streams, to query streams, or send notifications. */
export const SERVICE_KEY_ACTIONS = ['PUBLISH_FILES', 'PUBLISH_QUERIES', 'SEND_NOTIFICATIONS'] as const;
export type ServiceKeyAction = (typeof SERVICE_KEY_ACTIONS)[number];

/** One permission of a key; with a `projectId` it covers that project's resources (or its notifications) only. */
export interface ServiceKeyScope {
  action: ServiceKeyAction;
  projectId: string | null;
}

/** A service key as listed: everything but its secret, which is shown once, when it is created. */
export interface ServiceKey {
  id: string;
  name: string;
  scopes: ServiceKeyScope[];
  /** The admin who created it. */
  createdBy: string;
  createdAt: string;
}

/** What a secret starts with, so one found in a log or a repository is recognisable as Herald's. */
const SECRET_PREFIX = 'hsk_';

/**
 * SHA-256 of a secret, which is all Redis keeps. A slow password hash (bcrypt, scrypt) guards
 * guessable secrets against brute force; these are 256 random bits, which no search can find from
 * their hash, so one fast hash is as safe, and verification costs microseconds on every request.
 */
function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Whether `key` may do `action` on something in `projectId` (null: outside any project). */
export function allows(key: ServiceKey, action: ServiceKeyAction, projectId: string | null): boolean {
  return key.scopes.some((scope) => scope.action === action && (scope.projectId === null || scope.projectId === projectId));
}

/**
 * Service keys: what a producer outside Herald (any language, over HTTP) authenticates with.
 * Created and revoked by admins; stored hashed. Every request looks its key up in Redis (one
 * HGET, no cache), so a revoked key is refused by every API instance from the next request on.
 * Both hashes share a hash tag, so a revocation removes a key from both in one transaction.
 */
export function createServiceKeyStore(redis: Redis, keyPrefix: string) {
  const records = `${keyPrefix}{service_keys}:records`;
  const secrets = `${keyPrefix}{service_keys}:secrets`;

  return {
    /** Creates a key and returns it with its secret: the only time the secret exists outside the caller. */
    async create(input: {
      name: string;
      scopes: ServiceKeyScope[];
      createdBy: string;
    }): Promise<{ key: ServiceKey; secret: string }> {
      const key: ServiceKey = { id: randomUUID(), ...input, createdAt: new Date().toISOString() };
      const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
      const hash = hashOf(secret);
      await execChecked(
        redis
          .multi()
          .hset(records, key.id, JSON.stringify({ ...key, hash }))
          .hset(secrets, hash, JSON.stringify(key)),
      );
      return { key, secret };
    },

    /** The key a secret belongs to; null for an unknown or revoked one. */
    async verify(secret: string): Promise<ServiceKey | null> {
      const stored = await redis.hget(secrets, hashOf(secret));
      return stored === null ? null : (JSON.parse(stored) as ServiceKey);
    },

    /** Every live key, oldest first. */
    async list(): Promise<ServiceKey[]> {
      const stored = Object.values(await redis.hgetall(records));
      return stored
        .map((json) => {
          const { hash: _hash, ...key } = JSON.parse(json) as ServiceKey & { hash: string };
          return key;
        })
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },

    /** Revokes a key for good; false when no live key has the id. */
    async revoke(id: string): Promise<boolean> {
      const stored = await redis.hget(records, id);
      if (stored === null) return false;
      const { hash } = JSON.parse(stored) as { hash: string };
      const [removed] = (await execChecked(redis.multi().hdel(records, id).hdel(secrets, hash))) as [number, number];
      return removed === 1;
    },
  };
}

export type ServiceKeyStore = ReturnType<typeof createServiceKeyStore>;
