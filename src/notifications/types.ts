import { ID_PATTERN, ID_RULE } from '../ids.js';

export const NOTIFICATION_LEVELS = ['INFO', 'SUCCESS', 'WARNING', 'ERROR'] as const;
export type NotificationLevel = (typeof NOTIFICATION_LEVELS)[number];

export const TARGET_KINDS = ['USER', 'ROLE', 'PROJECT', 'GLOBAL'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** Who a notification is addressed to: one user, everyone with a role, a project's members, or everyone. */
export interface NotificationTarget {
  kind: TargetKind;
  /** The user id, role name or project id; null for GLOBAL. */
  id: string | null;
}

/** What a producer (a person through the API, or a job) asks to send. */
export interface NotificationInput {
  target: NotificationTarget;
  title: string;
  body?: string | null;
  /** Default INFO. */
  level?: NotificationLevel | null;
  data?: unknown;
}

/** One notification as stored, the same for everyone it reaches. */
export interface NotificationRecord {
  /** `<epoch>-<seq>-<source>`: unique, and says which target's history it belongs to. */
  id: string;
  level: NotificationLevel;
  target: NotificationTarget;
  title: string;
  body: string | null;
  data: unknown;
  createdAt: string;
}

/** What a viewer did to one notification in their own inbox; the others who got it are untouched. */
export type RemovedState = 'DELETED' | 'ARCHIVED';

/**
 * What an entry of a notification stream says: a notification was created, or (only in its
 * user's own receipts) the user marked one, or everything up to one, as read, or deleted or
 * archived one.
 */
export type NotificationEvent = 'CREATED' | 'READ' | 'READ_ALL' | RemovedState;

/** What a user does not want to hear about: notifications of these levels, or sent to these kinds of target. */
export interface NotificationPreferences {
  mutedLevels: NotificationLevel[];
  mutedTargetKinds: TargetKind[];
}

/** Whether `preferences` mute `notification`. */
export function isMuted(preferences: NotificationPreferences, notification: NotificationRecord): boolean {
  return preferences.mutedLevels.includes(notification.level) || preferences.mutedTargetKinds.includes(notification.target.kind);
}

/**
 * Preferences as stored: each list without repeats, in the order of NOTIFICATION_LEVELS and
 * TARGET_KINDS; throws InvalidNotificationError for a value that is not one of them.
 */
export function validPreferences(preferences: NotificationPreferences, argument = 'input'): NotificationPreferences {
  const pick = <T extends string>(values: readonly T[], given: readonly string[], field: string): T[] => {
    const unknown = given.find((value) => !(values as readonly string[]).includes(value));
    if (unknown !== undefined) {
      throw new InvalidNotificationError(`${argument}.${field}`, `${unknown.slice(0, 40)} is not one of ${values.join(', ')}`);
    }
    return values.filter((value) => given.includes(value));
  };
  return {
    mutedLevels: pick(NOTIFICATION_LEVELS, preferences.mutedLevels, 'mutedLevels'),
    mutedTargetKinds: pick(TARGET_KINDS, preferences.mutedTargetKinds, 'mutedTargetKinds'),
  };
}

/**
 * One entry of one source (a target's notifications, or a user's read receipts), exactly as it
 * is stored and published. `seq` counts 1, 2, 3, ... within the source, so a subscriber sees when
 * pub/sub dropped one; `t` orders entries of different sources.
 */
export interface NotificationEntry {
  /** When Redis stored it (ms); never lower than the source's previous entry's. */
  t: number;
  seq: number;
  epoch: string;
  source: string;
  event: NotificationEvent;
  /** READ and READ_ALL: the user's unread count right after the change. */
  unreadCount: number | null;
  /** CREATED: the source's notifications of each level (INFO, SUCCESS, WARNING, ERROR) up to this one. */
  c: [number, number, number, number] | null;
  /** CREATED: the new notification. READ: the one marked. READ_ALL: the newest one covered. */
  notification: NotificationRecord;
}

/** The order of replays, catch-ups and the inbox: stored time, then source, then seq. */
export function compareEntries(a: NotificationEntry, b: NotificationEntry): number {
  return a.t - b.t || (a.source < b.source ? -1 : a.source > b.source ? 1 : a.seq - b.seq);
}

/** Unread notifications of one viewer, by level; every level is present. */
export type UnreadCounts = Record<NotificationLevel, number>;

/** The limits on what may be sent; enforced for every producer, not only the API. */
export const NOTIFICATION_LIMITS = {
  titleLength: 200,
  bodyLength: 10_000,
  dataBytes: 16 * 1024,
} as const;

/** A notification that cannot be sent as given; `argument` names the offending input field. */
export class InvalidNotificationError extends Error {
  override name = 'InvalidNotificationError';
  constructor(
    readonly argument: string,
    message: string,
  ) {
    super(message);
  }
}

/** A well-formed notification, ready to store. */
export interface ValidNotification {
  target: NotificationTarget;
  title: string;
  body: string | null;
  level: NotificationLevel;
  data: unknown;
}

/** Checks and normalizes a notification (trimmed title, default level); throws InvalidNotificationError. */
export function validNotification(input: NotificationInput, argument = 'input'): ValidNotification {
  const target = validTarget(input.target, `${argument}.target`);
  const title = input.title.trim();
  if (title.length === 0 || title.length > NOTIFICATION_LIMITS.titleLength) {
    throw new InvalidNotificationError(`${argument}.title`, `title must be 1 to ${NOTIFICATION_LIMITS.titleLength} characters`);
  }
  const body = input.body ?? null;
  if (body !== null && body.length > NOTIFICATION_LIMITS.bodyLength) {
    throw new InvalidNotificationError(`${argument}.body`, `body must be at most ${NOTIFICATION_LIMITS.bodyLength} characters`);
  }
  const data = input.data ?? null;
  const dataBytes = Buffer.byteLength(JSON.stringify(data) ?? 'null');
  if (dataBytes > NOTIFICATION_LIMITS.dataBytes) {
    throw new InvalidNotificationError(
      `${argument}.data`,
      `data is ${dataBytes} bytes as JSON; at most ${NOTIFICATION_LIMITS.dataBytes} are accepted`,
    );
  }
  return { target, title, body, level: input.level ?? 'INFO', data };
}

/** A target's id becomes part of a Redis key: GLOBAL has none, every other kind needs a valid one. */
export function validTarget(target: NotificationTarget, argument = 'target'): NotificationTarget {
  if (target.kind === 'GLOBAL') {
    if (target.id !== null && target.id !== undefined) {
      throw new InvalidNotificationError(`${argument}.id`, 'a GLOBAL target has no id');
    }
    return { kind: 'GLOBAL', id: null };
  }
  if (target.id === null || target.id === undefined || !ID_PATTERN.test(target.id)) {
    throw new InvalidNotificationError(`${argument}.id`, `a ${target.kind} target needs an id of ${ID_RULE}`);
  }
  return { kind: target.kind, id: target.id };
}
