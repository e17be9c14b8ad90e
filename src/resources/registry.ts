import type { Redis } from 'ioredis';
import { defineScript, execChecked } from '../redis.js';
import type { ResourceRef } from '../updates/types.js';

/** The kinds of resource the API streams: what the jobs produce, and what other producers may register. */
export const RESOURCE_KINDS = ['file', 'query'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** A file or query someone started: who owns it (and shares it with a project) and where its updates live. */
export interface ResourceRecord {
  kind: ResourceKind;
  ownerId: string;
  projectId: string | null;
  /** Also the id of its BullMQ job. */
  id: string;
  name: string | null;
  createdAt: string;
}

/** Where a listing stands: the creation time (ms) and id of the last record it returned. */
export interface ListPosition {
  at: number;
  id: string;
}

export function refOf(record: Pick<ResourceRecord, 'kind' | 'id' | 'projectId'>): ResourceRef {
  return { kind: record.kind, id: record.id, projectId: record.projectId };
}

/** Writes a record's hash (ARGV[1] the expiry, then field, value, ...) only where no record has the id yet. */
const CREATE_IF_ABSENT = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

function fieldsOf(record: ResourceRecord): Record<string, string> {
  return {
    kind: record.kind,
    ownerId: record.ownerId,
    projectId: record.projectId ?? '',
    name: record.name ?? '',
    createdAt: record.createdAt,
  };
}

/**
 * Records of started resources; looked up on every subscribe and read to authorize it. Each is
 * also indexed by creation time, per owner and for everyone, so they can be listed newest first;
 * an index drops what is older than the records' TTL on every write.
 */
export function createResourceRegistry(redis: Redis, keyPrefix: string, ttlSeconds: number) {
  const key = (id: string) => `${keyPrefix}resource:{${id}}`;
  const index = (ownerId: string | null) =>
    ownerId === null ? `${keyPrefix}resources_by_time` : `${keyPrefix}resources_by_time:{${ownerId}}`;
  const createIfAbsent = defineScript<number>(redis, 'heraldCreateResource', CREATE_IF_ABSENT);

  /** Adds to one index (one key per MULTI: on a Cluster the indexes live in other slots than the record). */
  async function addTo(indexKey: string, at: number, id: string): Promise<void> {
    await execChecked(
      redis
        .multi()
        .zadd(indexKey, at, id)
        .zremrangebyscore(indexKey, '-inf', `(${at - ttlSeconds * 1000}`)
        .expire(indexKey, ttlSeconds),
    );
  }

  return {
    async create(record: ResourceRecord): Promise<void> {
      await execChecked(redis.multi().hset(key(record.id), fieldsOf(record)).expire(key(record.id), ttlSeconds));
      const at = Date.parse(record.createdAt);
      await Promise.all([addTo(index(record.ownerId), at, record.id), addTo(index(null), at, record.id)]);
    },

    /**
     * Creates the record unless the id is taken, in one atomic step, and says whether it did: a
     * producer naming its own ids (the HTTP publish endpoint) cannot take over someone else's resource.
     */
    async createIfAbsent(record: ResourceRecord): Promise<boolean> {
      const fields = Object.entries(fieldsOf(record)).flat();
      return (await createIfAbsent(1, key(record.id), String(ttlSeconds), ...fields)) === 1;
    },

    /**
     * Up to `count` positions of `ownerId`'s records (null: everyone's), newest first, after
     * `after`. A position may name a record that has expired since; `get` then returns null.
     */
    async list(ownerId: string | null, after: ListPosition | null, count: number): Promise<ListPosition[]> {
      const positions: ListPosition[] = [];
      const max = after === null ? '+inf' : String(after.at);
      for (let offset = 0; positions.length < count;) {
        const batch = await redis.zrange(index(ownerId), max, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, count, 'WITHSCORES');
        if (batch.length === 0) break;
        offset += batch.length / 2;
        for (let i = 0; i < batch.length; i += 2) {
          const position = { id: batch[i]!, at: Number(batch[i + 1]) };
          // Records of the same millisecond come in descending id order: skip those up to `after`.
          if (after === null || position.at < after.at || position.id < after.id) positions.push(position);
        }
      }
      return positions.slice(0, count);
    },

    async get(id: string): Promise<ResourceRecord | null> {
      const { kind, ownerId, projectId, name, createdAt } = await redis.hgetall(key(id));
      if (!kind || ownerId === undefined || createdAt === undefined) return null;
      return { kind: kind as ResourceKind, id, ownerId, projectId: projectId || null, name: name || null, createdAt };
    },
  };
}

export type ResourceRegistry = ReturnType<typeof createResourceRegistry>;
