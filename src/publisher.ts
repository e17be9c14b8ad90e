import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from './config.js';
import { ID_PATTERN, ID_RULE } from './ids.js';
import { createLogger } from './logger.js';
import { createNotificationStore } from './notifications/store.js';
import type { NotificationEntry, NotificationInput } from './notifications/types.js';
import { createRedis } from './redis.js';
import { withTimeout } from './timeouts.js';
import { createResourceRegistry, type ResourceKind } from './resources/registry.js';
import type { BodyPiece } from './updates/body.js';
import { createUpdateStore, StreamEndedError } from './updates/store.js';
import type { ResourceRef, UpdateEntry, UpdateInput } from './updates/types.js';

export { StreamEndedError };

/** How long {@link Publisher.close} waits for Redis to answer QUIT. */
const CLOSE_WAIT_MS = 5_000;
export type { BodyPiece };
export type { NotificationEntry, NotificationInput, ResourceKind, ResourceRef, UpdateEntry, UpdateInput };

/** A resource a producer announces: who may watch it (its owner, admins, and its project's members). */
export interface ResourceSpec {
  kind: ResourceKind;
  /** Letters, digits and `_ . : @ | -`, at most 128; a random UUID when left out. */
  id?: string;
  ownerId: string;
  projectId?: string | null;
  name?: string | null;
}

export interface PublisherOptions {
  /**
   * Herald's settings, read like Herald's own workers read them: where Redis is (REDIS_URL,
   * REDIS_SENTINELS or REDIS_CLUSTER_NODES), KEY_PREFIX, HISTORY_LIMIT, UPDATE_TTL_SECONDS and the
   * NOTIFICATION_RETENTION_* limits. They must match the API's, or subscribers look elsewhere.
   * Default: process.env.
   */
  env?: Record<string, string | undefined>;
}

/**
 * `herald/publisher`: how a Node service that is not one of Herald's jobs puts progress and
 * notifications in front of people. It writes through the same stores and Lua scripts as Herald's
 * workers, so its updates get their seq, history, trimming and live delivery exactly as theirs do.
 *
 * ```ts
 * const publisher = createPublisher();
 * const file = await publisher.register({ kind: 'file', ownerId: 'alice' });
 * await publisher.append(file, { event: 'processing_started', status: 'PROCESSING', progress: 0 });
 * await publisher.append(file, { event: 'processing_completed', status: 'COMPLETED', progress: 100 });
 * await publisher.notify({ target: { kind: 'USER', id: 'alice' }, title: 'Your file is ready' });
 * await publisher.close();
 * ```
 */
export function createPublisher(options: PublisherOptions = {}) {
  const config: Config = loadConfig(options.env ?? process.env, { role: 'worker' });
  const redis = createRedis(config.redis, 'commands', createLogger(config.logLevel, 'publisher'));
  const store = createUpdateStore(redis, { keyPrefix: config.keyPrefix, ...config.updates });
  const resources = createResourceRegistry(redis, config.keyPrefix, config.updates.ttlSeconds);
  const notifications = createNotificationStore(redis, { keyPrefix: config.keyPrefix, ...config.notifications });

  return {
    /** Records the resource so the API lets its owner and project subscribe; call it before the first append. */
    async register(spec: ResourceSpec): Promise<ResourceRef> {
      const id = spec.id ?? randomUUID();
      if (!ID_PATTERN.test(id)) throw new TypeError(`id must be ${ID_RULE}, not ${JSON.stringify(id)}`);
      if (spec.projectId && !ID_PATTERN.test(spec.projectId)) {
        throw new TypeError(`projectId must be ${ID_RULE}, not ${JSON.stringify(spec.projectId)}`);
      }
      const projectId = spec.projectId ?? null;
      await resources.create({
        kind: spec.kind,
        id,
        ownerId: spec.ownerId,
        projectId,
        name: spec.name ?? null,
        createdAt: new Date().toISOString(),
      });
      return { kind: spec.kind, id, projectId };
    },

    /**
     * Appends one update: numbered, stored and published in one Redis step, and stored once even
     * if the call is retried. After a terminal status (COMPLETED, FAILED, CANCELLED) the stream is
     * closed: a later append throws StreamEndedError. A query's answer goes in `body` (each
     * token as `{ append: token }`, the attempt's first with `restart: true`) rather than as `text`
     * on every update, so its history grows with the answer, not with its square.
     */
    append(resource: ResourceRef, update: UpdateInput, body?: BodyPiece): Promise<UpdateEntry> {
      return store.append(resource, update, body);
    },

    /** Sends a notification to a user, a role, a project or everyone; kept for whoever is offline. */
    notify(notification: NotificationInput): Promise<NotificationEntry> {
      return notifications.send(notification);
    },

    /**
     * Waits for what was sent, then closes the Redis connection; after CLOSE_WAIT_MS without an
     * answer (a node that froze never answers QUIT) it drops the connection instead.
     */
    async close(): Promise<void> {
      await withTimeout(
        redis.quit().catch(() => undefined),
        CLOSE_WAIT_MS,
        undefined,
      );
      redis.disconnect();
    },
  };
}

export type Publisher = ReturnType<typeof createPublisher>;
