import { ID_PATTERN } from '../ids.js';
import type { NotificationTarget, TargetKind } from './types.js';

/**
 * Each target's keys carry the target's own hash tag, so on a Redis Cluster the targets spread
 * over the shards; one script step still numbers, stores, trims and publishes, since it touches
 * one target only. A user's read state, read receipts, preferences and removed notifications share the tag of the
 * user's own target.
 */
function tagOf(source: string): string {
  return `{notifications:${source.startsWith('receipts:') ? `user:${source.slice('receipts:'.length)}` : source}}`;
}

/** The Redis keys and channels of the notification store. */
export function notificationKeys(prefix: string) {
  const base = (source: string) => `${prefix}notifications:${tagOf(source)}:${source}:`;
  return {
    /** Hash: `seq` (last seq), `epoch`, `t` (last stored time, ms), `c:<LEVEL>` (notifications of each level ever sent). */
    meta: (source: string) => `${base(source)}meta`,
    /** Sorted set of one source's entries (JSON), scored by seq. */
    entries: (source: string) => `${base(source)}entries`,
    /** Sorted set of the producer-given ids of a source's kept notifications (see notify.lua's send), scored by seq. */
    sendIds: (source: string) => `${base(source)}send_ids`,
    /** A source's channel; under its tag, so the script publishes to a shard channel of its slot on a Cluster. */
    channel: (source: string) => `${base(source)}channel`,
    /** Hash: per target source, the JSON `[epoch, seq, counts by level]` up to which the user read everything. */
    watermarks: (userId: string) => `${base(receiptsSource(userId))}read_upto`,
    /** Set of `<source>|<epoch>|<seq>|<level>` the user marked read above the watermarks. */
    readSet: (userId: string) => `${base(receiptsSource(userId))}read`,
    /** Hash: `levels` and `kinds`, the levels and target kinds the user muted, comma-separated. */
    preferences: (userId: string) => `${base(receiptsSource(userId))}preferences`,
    /** Hash: notification id -> DELETED or ARCHIVED, what the user removed from their own inbox. */
    removed: (userId: string) => `${base(receiptsSource(userId))}removed`,
  };
}

export type NotificationKeys = ReturnType<typeof notificationKeys>;

/** A target's source name: `user:<id>`, `role:<name>`, `project:<id>` or `global`. */
export function targetSource(target: NotificationTarget): string {
  return target.kind === 'GLOBAL' ? 'global' : `${target.kind.toLowerCase()}:${target.id}`;
}

/** The kind of target a target source (not a receipts source) belongs to. */
export function kindOf(source: string): TargetKind {
  return source === 'global' ? 'GLOBAL' : (source.slice(0, source.indexOf(':')).toUpperCase() as TargetKind);
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
