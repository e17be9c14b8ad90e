import { ID_PATTERN } from '../ids.js';
import type { NotificationTarget } from './types.js';

/**
 * Every notification key carries the same hash tag, so the one script that numbers, stores,
 * trims and publishes can touch them all on a Redis Cluster too. The price: all notification
 * data lives in one slot (one shard).
 */
const TAG = '{notifications}';

/** The Redis keys and channels of the notification store. */
export function notificationKeys(prefix: string) {
  const base = `${prefix}notifications:${TAG}:`;
  return {
    /** What the script appends `src:<source>` to when it trims a source it was not handed. */
    base,
    /** Hash: `n` (last global number), `epoch`, `seq:<source>` (last per-source seq), `trimmed:<source>` (highest n removed). */
    meta: `${base}meta`,
    /** Sorted set of `<n>|<source>` scored by the time (ms) the entry expires: retention by age. */
    timeline: `${base}timeline`,
    /** Sorted set of one source's entries (JSON), scored by n. */
    source: (source: string) => `${base}src:${source}`,
    /** String: every notification with n up to this is read by the user ("mark all"). */
    watermark: (userId: string) => `${base}read_upto:${userId}`,
    /** Sorted set of `<n>|<source>` the user marked read above the watermark, scored by n. */
    readSet: (userId: string) => `${base}read:${userId}`,
    /** A source's channel; under the tag too, so the script publishes to a shard channel of its slot on a Cluster. */
    channel: (source: string) => `${base}channel:${source}`,
  };
}

export type NotificationKeys = ReturnType<typeof notificationKeys>;

/** A target's source name: `user:<id>`, `role:<name>`, `project:<id>` or `global`. */
export function targetSource(target: NotificationTarget): string {
  return target.kind === 'GLOBAL' ? 'global' : `${target.kind.toLowerCase()}:${target.id}`;
}

/** The source of a user's read receipts: only that user's own streams read it. */
function receiptsSource(userId: string): string {
  return `receipts:${userId}`;
}

/** Everything one viewer is addressed by, and where their read receipts go. */
export interface Audience {
  userId: string;
  /** Sources of notifications addressed to the viewer: their user, roles, projects, and global. */
  targets: string[];
  receipts: string;
}

/**
 * The viewer's sources, from their token. Roles that are not valid ids cannot be sent to, so
 * they are left out rather than turned into keys.
 */
export function audienceOf(viewer: { id: string; roles: string[]; projects: string[] }): Audience {
  const targets: NotificationTarget[] = [
    { kind: 'USER', id: viewer.id },
    ...viewer.roles.filter((role) => ID_PATTERN.test(role)).map((id) => ({ kind: 'ROLE' as const, id })),
    ...viewer.projects.map((id) => ({ kind: 'PROJECT' as const, id })),
    { kind: 'GLOBAL', id: null },
  ];
  return { userId: viewer.id, targets: [...new Set(targets.map(targetSource))], receipts: receiptsSource(viewer.id) };
}
