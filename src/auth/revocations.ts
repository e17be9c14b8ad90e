import type { Redis } from 'ioredis';
import { execChecked, publish, type ChannelListener, type ChannelSubscriber, type ResyncListener } from '../redis.js';
import type { Viewer } from './token.js';

export interface RevocationOptions {
  keyPrefix: string;
  /** How long a revocation is kept; tokens it refuses should all have expired by then. */
  ttlSeconds: number;
  /** Told when a background reload from Redis failed; the next verification tries again. */
  onError?: (error: Error) => void;
}

/**
 * Told of every revocation, on every instance, once the instance knows of it; returns how many of
 * the user's connections it closed. Called again for a revocation already applied: must be idempotent.
 */
export type RevocationListener = (userId: string, revokedAt: number) => number;

interface RevocationMessage {
  userId: string;
  revokedAt: number;
}

function isRevocationMessage(message: unknown): message is RevocationMessage {
  const value = message as Partial<RevocationMessage> | null;
  return typeof value?.userId === 'string' && typeof value.revokedAt === 'number';
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Whether a revocation at `revokedAt` (seconds) covers the viewer's token. Same-second tokens are
 * covered: `iat` has one-second resolution, so one issued just before the revocation looks the same.
 * A token without `iat` cannot show it is newer, so it is covered too.
 */
export function revokes(revokedAt: number, viewer: Viewer): boolean {
  return viewer.issuedAt === null || viewer.issuedAt <= revokedAt;
}

/**
 * Revoked users, cluster-wide. Each revocation is a member of one sorted set (user id scored by the
 * revocation second, pruned after `ttlSeconds`) and then a message on one channel (on a Redis
 * Cluster a shard channel, which a MULTI on the set's slot could not publish to). Every instance keeps the set in memory, loaded once and then kept fresh by the channel
 * (and reloaded after its Redis subscriber reconnects, when messages may have been lost), so
 * checking a token never waits for Redis.
 */
export function createRevocationList(redis: Redis, hub: ChannelSubscriber, options: RevocationOptions) {
  const key = `${options.keyPrefix}revocations`;
  const channel = `${options.keyPrefix}revocations:events`;
  const revokedAt = new Map<string, number>();
  const listeners = new Set<RevocationListener>();
  let subscription: Promise<void> | null = null;
  let loaded: Promise<void> | null = null;

  function apply(userId: string, at: number): number {
    if ((revokedAt.get(userId) ?? -Infinity) < at) revokedAt.set(userId, at);
    let closed = 0;
    for (const listener of listeners) closed += listener(userId, at);
    return closed;
  }

  async function read(): Promise<void> {
    const entries = await redis.zrangebyscore(key, nowSeconds() - options.ttlSeconds, '+inf', 'WITHSCORES');
    for (let i = 0; i < entries.length; i += 2) apply(entries[i]!, Number(entries[i + 1]));
  }

  /** Applies each revocation published; reads the whole list again after a reconnect. */
  const listener: ChannelListener & ResyncListener = {
    onMessage(message) {
      if (isRevocationMessage(message)) apply(message.userId, message.revokedAt);
    },
    onResync() {
      read().catch((error: Error) => options.onError?.(error));
    },
  };

  /** Subscribes first, then reads, so no revocation falls between the two. */
  function load(): Promise<void> {
    subscription ??= hub.subscribe(channel, listener);
    loaded ??= subscription.then(read).catch((error: unknown) => {
      loaded = null;
      throw error;
    });
    return loaded;
  }

  function isRevoked(viewer: Viewer): boolean {
    const at = revokedAt.get(viewer.id);
    if (at === undefined) return false;
    if (at < nowSeconds() - options.ttlSeconds) {
      revokedAt.delete(viewer.id);
      return false;
    }
    return revokes(at, viewer);
  }

  return {
    /** Loads the list in the background; verification waits for the first load only. */
    start(): void {
      hub.onResync(listener);
      load().catch((error: Error) => options.onError?.(error));
    },

    /** Never waits, even for a subscription Redis has not confirmed yet. */
    stop(): void {
      hub.offResync(listener);
      hub.unsubscribe(channel, listener);
      subscription = null;
      loaded = null;
    },

    /** For the token verifier: waits for the first load, then answers from memory. */
    async check(viewer: Viewer): Promise<boolean> {
      await load();
      return isRevoked(viewer);
    },

    /** From memory only: for re-checking a connection that was verified a moment ago. */
    isRevoked,

    /**
     * Revokes every token of `userId` issued until now, on every instance, and closes their
     * connections. Applied here first, so the count is this instance's connections closed.
     */
    async revoke(userId: string): Promise<number> {
      const at = nowSeconds();
      const closed = apply(userId, at);
      await execChecked(
        redis
          .multi()
          .zadd(key, at, userId)
          .zremrangebyscore(key, '-inf', `(${at - options.ttlSeconds}`)
          .expire(key, options.ttlSeconds),
      );
      await publish(redis, channel, JSON.stringify({ userId, revokedAt: at } satisfies RevocationMessage));
      return closed;
    },

    /** Registers what closes a revoked user's connections; call the result to stop. */
    onRevoked(listener: RevocationListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export type RevocationList = ReturnType<typeof createRevocationList>;
