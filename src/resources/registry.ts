import type { Redis } from 'ioredis';
import { execChecked } from '../redis.js';
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

export function refOf(record: Pick<ResourceRecord, 'kind' | 'id' | 'projectId'>): ResourceRef {
  return { kind: record.kind, id: record.id, projectId: record.projectId };
}

/** Records of started resources; looked up on every subscribe and read to authorize it. */
export function createResourceRegistry(redis: Redis, keyPrefix: string, ttlSeconds: number) {
  const key = (id: string) => `${keyPrefix}resource:{${id}}`;
  return {
    async create(record: ResourceRecord): Promise<void> {
      await execChecked(
        redis
          .multi()
          .hset(key(record.id), {
            kind: record.kind,
            ownerId: record.ownerId,
            projectId: record.projectId ?? '',
            name: record.name ?? '',
            createdAt: record.createdAt,
          })
          .expire(key(record.id), ttlSeconds),
      );
    },

    async get(id: string): Promise<ResourceRecord | null> {
      const { kind, ownerId, projectId, name, createdAt } = await redis.hgetall(key(id));
      if (!kind || ownerId === undefined || createdAt === undefined) return null;
      return { kind: kind as ResourceKind, id, ownerId, projectId: projectId || null, name: name || null, createdAt };
    },
  };
}

export type ResourceRegistry = ReturnType<typeof createResourceRegistry>;
