import { isAdmin, isProjectMember } from '../auth/access.js';
import type { Viewer } from '../auth/token.js';
import { clientError, ErrorCode, rateLimitedError } from '../errors.js';
import { decodeNotificationCursor, encodeNotificationCursor, type NotificationCursor } from '../notifications/cursor.js';
import { audienceOf, type Audience } from '../notifications/keys.js';
import { parseNotificationId, type NotificationRef as StoredRef } from '../notifications/store.js';
import { openNotificationStream, type NotificationStreamEvent } from '../notifications/stream.js';
import {
  InvalidNotificationError,
  NOTIFICATION_LEVELS,
  TARGET_KINDS,
  validTarget,
  type NotificationEntry,
  type NotificationEvent,
  type NotificationLevel,
  type NotificationPreferences,
  type NotificationRecord,
  type NotificationTarget,
} from '../notifications/types.js';
import type { OnlineUser } from '../presence/registry.js';
import { decodeCursor } from '../updates/cursor.js';
import { CursorAheadError, type HistoryGap } from '../updates/stream.js';
import { PageInfoRef } from './page-info.js';
import { builder, EVENT_CURSOR, type Context } from './builder.js';
import { assertAdmin, badInput, resumeCursor } from './guards.js';
import { HistoryGapRef } from './history-gap.js';

/** One item as the schema serves it: a stored entry, or a gap notice made up on the spot. */
interface NotificationItem {
  /** The viewer's position right after the item, encoded. */
  cursor: string;
  event: NotificationEvent | 'HISTORY_GAP';
  /** The entry as stored; null for a gap notice. */
  entry: NotificationEntry | null;
  unreadCount: number | null;
  notification: NotificationRecord;
  /** Known when read together with the viewer's read state; null means "look it up". */
  read: boolean | null;
  gap: HistoryGap | null;
}

interface NotificationPage {
  items: NotificationItem[];
  hasNextPage: boolean;
}

interface Summary {
  unread: number;
  byLevel: Array<{ level: NotificationLevel; count: number }>;
}

const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;
const MAX_MARK_IDS = 1_000;

function itemOf(entry: NotificationEntry, read: boolean | null, position: NotificationCursor): NotificationItem {
  return {
    cursor: encodeNotificationCursor(position),
    event: entry.event,
    entry,
    unreadCount: entry.unreadCount,
    notification: entry.notification,
    read: entry.event === 'CREATED' ? read : true,
    gap: null,
  };
}

/** The cursor of the item `notifications` makes of `event`, as the item's own `cursor` field gives it. */
function notificationEventCursor(event: NotificationStreamEvent): string {
  return encodeNotificationCursor(event.position);
}

/**
 * The cursor sendNotification returns: right after the notification in its own target and, when
 * the sender is in its audience, where each of the sender's other targets stood once it was
 * stored; so the sender resuming from it gets what came after, in every target, and not
 * everything their other targets still keep.
 */
async function sentPosition(context: Context, entry: NotificationEntry): Promise<NotificationCursor> {
  const own = { epoch: entry.epoch, seq: entry.seq };
  const audience = audienceOf(context.viewer);
  if (!audience.targets.includes(entry.source)) return { sources: new Map([[entry.source, own]]), pivot: entry.source };
  const sources = await context.services.notifications.positions(audience);
  sources.set(entry.source, own);
  return { sources, pivot: entry.source };
}

/**
 * A notifications cursor, read against the viewer's sources. A cursor of the single sequence
 * notifications had before each target got its own is refused by name.
 */
function notificationCursor(audience: Audience, value: string | null | undefined, argument: string): NotificationCursor | null {
  if (value === null || value === undefined) return null;
  const cursor = decodeNotificationCursor(value, [...audience.targets, audience.receipts]);
  if (cursor) return cursor;
  if (decodeCursor(value)) {
    badInput(
      argument,
      `${argument} is a cursor of the former single notification sequence, no longer accepted; start again without it`,
    );
  }
  badInput(argument, `${argument} is not a cursor this server issued`);
}

function gapItem(viewer: Viewer, gap: HistoryGap, position: NotificationCursor): NotificationItem {
  const trimmed = gap.reason === 'TRIMMED';
  const cursor = encodeNotificationCursor(position);
  return {
    cursor,
    event: 'HISTORY_GAP',
    entry: null,
    unreadCount: null,
    read: true,
    gap,
    notification: {
      id: `gap-${cursor}`,
      level: 'WARNING',
      target: { kind: 'USER', id: viewer.id },
      title: trimmed ? 'Some notifications are no longer kept' : 'The notification history was lost',
      body: trimmed
        ? 'Notifications after your cursor passed retention before you received them; the stream goes on with those still kept.'
        : 'Your cursor belongs to a notification history Redis no longer has; the stream starts again from everything kept.',
      data: { reason: gap.reason, resumesAfter: gap.resumesAfter },
      createdAt: new Date().toISOString(),
    },
  };
}

/** Runs a notifications-module call, turning its input errors into BAD_USER_INPUT. */
async function asInput<T>(run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof InvalidNotificationError) badInput(error.argument, error.message);
    throw error;
  }
}

/** Parses the ids given as `argument`: at most MAX_MARK_IDS, each one this server made. */
function notificationRefs(ids: ReadonlyArray<string | number>, argument: string): StoredRef[] {
  if (ids.length > MAX_MARK_IDS) badInput(argument, `give at most ${MAX_MARK_IDS} ids`);
  return ids
    .map(String)
    .map((id) => parseNotificationId(id) ?? badInput(argument, `${id.slice(0, 80)} is not a notification id`));
}

/** Admins send to anyone, members to their project, anyone to a single user. */
function assertMaySend(viewer: Viewer, target: NotificationTarget): void {
  if (isAdmin(viewer) || target.kind === 'USER') return;
  if (target.kind === 'PROJECT' && isProjectMember(viewer, target.id!)) return;
  const reason =
    target.kind === 'PROJECT'
      ? `you are not a member of project ${target.id}`
      : `only admins may send to a ${target.kind} target`;
  throw clientError(ErrorCode.Forbidden, reason);
}

const LevelEnum = builder.enumType('NotificationLevel', { values: NOTIFICATION_LEVELS });

const TargetKindEnum = builder.enumType('NotificationTargetKind', {
  values: {
    USER: { description: 'One user, by id.' },
    ROLE: { description: 'Everyone whose token lists the role.' },
    PROJECT: { description: "The project's members (everyone whose token lists the project)." },
    GLOBAL: { description: 'Everyone. Has no id.' },
  } satisfies Record<(typeof TARGET_KINDS)[number], { description: string }>,
});

const EventEnum = builder.enumType('NotificationEvent', {
  description:
    'What a `notifications` item says. Only CREATED items are notifications in the inbox and the counts; ' +
    'the others come only on the subscription, ordered and resumable like the rest.',
  values: {
    CREATED: { description: 'A notification was sent to the viewer.' },
    READ: {
      description:
        'The viewer marked this notification read (in any tab). `read` is true and `unreadCount` is their unread count after the change.',
    },
    READ_ALL: {
      description:
        'The viewer marked everything read up to and including this notification (the newest it covered). ' +
        '`unreadCount` is their unread count after the change.',
    },
    DELETED: {
      description:
        'The viewer deleted this notification from their inbox (in any tab): it is gone for them only. ' +
        '`unreadCount` is their unread count after the change.',
    },
    ARCHIVED: {
      description:
        'The viewer archived this notification (in any tab): it left their inbox and unread count and is listed ' +
        'by `notificationInbox(archived: true)`. `unreadCount` is their unread count after the change.',
    },
    HISTORY_GAP: {
      description:
        'Sent before anything else when items after the `after` cursor are gone: older than retention ' +
        '(NOTIFICATION_RETENTION_COUNT / NOTIFICATION_RETENTION_DAYS), or from a history Redis has lost. Not stored: ' +
        'see `gap`; its cursor resumes where the stream goes on. The inbox may have lost the same notifications.',
    },
  } as const,
});

const TargetRef = builder.objectRef<NotificationTarget>('NotificationTarget').implement({
  description: 'Who a notification is addressed to.',
  fields: (t) => ({
    kind: t.field({ type: TargetKindEnum, resolve: (target) => target.kind }),
    id: t.id({
      nullable: true,
      description: 'The user id, role name or project id; null for GLOBAL.',
      resolve: (target) => target.id,
    }),
  }),
});

const TargetInput = builder.inputType('NotificationTargetInput', {
  fields: (t) => ({
    kind: t.field({ type: TargetKindEnum, required: true }),
    id: t.id({ description: 'The user id, role name or project id; must be absent for GLOBAL.' }),
  }),
});

const SendInput = builder.inputType('SendNotificationInput', {
  fields: (t) => ({
    target: t.field({ type: TargetInput, required: true }),
    title: t.string({ required: true, description: '1 to 200 characters after trimming.' }),
    body: t.string({ description: 'At most 10,000 characters.' }),
    level: t.field({ type: LevelEnum, description: 'Default INFO.' }),
    data: t.field({ type: 'JSON', description: 'Anything a client needs to act on it; at most 16 KiB as JSON.' }),
  }),
});

const PreferencesRef = builder.objectRef<NotificationPreferences>('NotificationPreferences').implement({
  description:
    "What the viewer does not want to hear about. A muted notification is still stored and kept: it is not sent on the viewer's " +
    '`notifications` subscriptions, not counted as unread (`unreadNotificationCount`, `notificationSummary`) and left out of ' +
    '`notificationInbox` unless asked for with `includeMuted`.',
  fields: (t) => ({
    mutedLevels: t.field({
      type: [LevelEnum],
      description: 'In order INFO, SUCCESS, WARNING, ERROR.',
      resolve: (p) => p.mutedLevels,
    }),
    mutedTargetKinds: t.field({
      type: [TargetKindEnum],
      description: 'In order USER, ROLE, PROJECT, GLOBAL.',
      resolve: (p) => p.mutedTargetKinds,
    }),
  }),
});

const PreferencesInput = builder.inputType('NotificationPreferencesInput', {
  description: 'Each list given replaces the one stored (repeats are ignored); a list left out stays as it was.',
  fields: (t) => ({
    mutedLevels: t.field({ type: [LevelEnum] }),
    mutedTargetKinds: t.field({ type: [TargetKindEnum] }),
  }),
});

const NotificationRef = builder.objectRef<NotificationItem>('Notification').implement({
  description:
    'A message addressed to a user, a role, a project or everyone; on the `notifications` subscription also ' +
    'a read receipt or a gap notice (see `event`).',
  fields: (t) => ({
    id: t.id({ resolve: (item) => item.notification.id }),
    cursor: t.string({
      description:
        'Opaque: the last notification seen of each target. Passing it as `after` to `notifications` resumes ' +
        'right after this item (of the stream or inbox page that gave it); to `notificationInbox`, continues with ' +
        "older notifications. sendNotification's is right after the new notification in its target and, when the sender " +
        'is in its audience, where each of their other targets stood once it was stored.',
      resolve: (item) => item.cursor,
    }),
    target: t.field({ type: TargetRef, resolve: (item) => item.notification.target }),
    title: t.string({ resolve: (item) => item.notification.title }),
    body: t.string({ nullable: true, resolve: (item) => item.notification.body }),
    level: t.field({ type: LevelEnum, resolve: (item) => item.notification.level }),
    data: t.field({ type: 'JSON', nullable: true, resolve: (item) => item.notification.data ?? null }),
    createdAt: t.field({ type: 'DateTime', resolve: (item) => item.notification.createdAt }),
    read: t.boolean({
      description: 'Whether the viewer has read it.',
      resolve: async (item, _args, context) => item.read ?? context.services.notifications.isRead(context.viewer.id, item.entry!),
    }),
    event: t.field({ type: EventEnum, resolve: (item) => item.event }),
    unreadCount: t.int({
      nullable: true,
      description: "READ and READ_ALL: the viewer's unread count right after the change; null otherwise.",
      resolve: (item) => item.unreadCount,
    }),
    gap: t.field({
      type: HistoryGapRef,
      nullable: true,
      description: "Set only on a HISTORY_GAP item. `resumesAfter` is 0 here: the item's `cursor` says where the stream goes on.",
      resolve: (item) => item.gap,
    }),
  }),
});

const EdgeRef = builder.objectRef<NotificationItem>('NotificationEdge').implement({
  fields: (t) => ({
    cursor: t.string({ resolve: (item) => item.cursor }),
    node: t.field({ type: NotificationRef, resolve: (item) => item }),
  }),
});

const ConnectionRef = builder.objectRef<NotificationPage>('NotificationConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [EdgeRef], resolve: (page) => page.items }),
    pageInfo: t.field({
      type: PageInfoRef,
      resolve: (page) => ({ hasNextPage: page.hasNextPage, endCursor: page.items.at(-1)?.cursor ?? null }),
    }),
  }),
});

const LevelCountRef = builder.objectRef<{ level: NotificationLevel; count: number }>('LevelCount').implement({
  fields: (t) => ({
    level: t.field({ type: LevelEnum, resolve: (c) => c.level }),
    count: t.exposeInt('count'),
  }),
});

const SummaryRef = builder.objectRef<Summary>('NotificationSummary').implement({
  description: 'What a client shows right after sign-in.',
  fields: (t) => ({
    unread: t.exposeInt('unread'),
    unreadByLevel: t.field({
      type: [LevelCountRef],
      description: 'Every level, in order INFO, SUCCESS, WARNING, ERROR; zero counts included.',
      resolve: (summary) => summary.byLevel,
    }),
  }),
});

const OnlineUserRef = builder.objectRef<OnlineUser>('OnlineUser').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    connections: t.exposeInt('connections', { description: 'Open WebSocket connections, over every live API instance.' }),
  }),
});

builder.queryField('notificationInbox', (t) =>
  t.field({
    type: ConnectionRef,
    description:
      'Newest first: every notification addressed to the viewer (their user, roles, projects, and global) that ' +
      'retention still keeps, but for those they deleted, archived or muted. `first` is 1 to 100 (default 20); ' +
      '`after` is the cursor of a notification (its `cursor` or `pageInfo.endCursor`) and continues with older ones.',
    args: {
      first: t.arg.int(),
      after: t.arg.string(),
      unreadOnly: t.arg.boolean(),
      includeMuted: t.arg.boolean({
        description: 'Also list those the viewer muted (see notificationPreferences). Default false.',
      }),
      archived: t.arg.boolean({ description: 'List only those the viewer archived instead. Default false.' }),
    },
    resolve: async (_root, args, context) => {
      const first = args.first ?? DEFAULT_PAGE;
      if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) badInput('first', `first must be 1 to ${MAX_PAGE}`);
      const audience = audienceOf(context.viewer);
      const page = await context.services.notifications.inbox(audience, {
        before: notificationCursor(audience, args.after, 'after'),
        first,
        unreadOnly: args.unreadOnly ?? false,
        includeMuted: args.includeMuted ?? false,
        archived: args.archived ?? false,
      });
      if (!page.current) badInput('after', 'after belongs to a notification history that is gone; start again without it');
      return { items: page.items.map(({ entry, read, cursor }) => itemOf(entry, read, cursor)), hasNextPage: page.hasNextPage };
    },
  }),
);

builder.queryField('unreadNotificationCount', (t) =>
  t.int({
    description: 'Notifications addressed to the viewer that they have not read, archived, deleted or muted.',
    resolve: async (_root, _args, context) => (await context.services.notifications.unread(audienceOf(context.viewer))).total,
  }),
);

builder.queryField('notificationSummary', (t) =>
  t.field({
    type: SummaryRef,
    resolve: async (_root, _args, context) => {
      const { total, byLevel } = await context.services.notifications.unread(audienceOf(context.viewer));
      return { unread: total, byLevel: NOTIFICATION_LEVELS.map((level) => ({ level, count: byLevel[level] })) };
    },
  }),
);

builder.queryField('notificationPreferences', (t) =>
  t.field({
    type: PreferencesRef,
    description: "The viewer's own; nothing is muted until they say so.",
    resolve: (_root, _args, context) => context.services.notifications.preferences(context.viewer.id),
  }),
);

builder.queryField('onlineUsers', (t) =>
  t.field({
    type: [OnlineUserRef],
    description: 'Admins only. Every user with an open WebSocket on a live API instance, sorted by id.',
    resolve: (_root, _args, context) => {
      assertAdmin(context, 'list online users');
      return context.services.presence.onlineUsers();
    },
  }),
);

builder.mutationField('sendNotification', (t) =>
  t.field({
    type: NotificationRef,
    description:
      'Stores and publishes a notification in one step; it reaches every connection of everyone addressed, on ' +
      'any instance, and waits in their inbox. Admins may send to anyone, project members to their project, ' +
      'anyone to a single user; anything else is FORBIDDEN. Each user, admins included, may send NOTIFY_RATE_LIMIT ' +
      'per NOTIFY_RATE_WINDOW_MS over every instance; the rest fail with RATE_LIMITED (`extensions.retryAfterSeconds`).',
    args: { input: t.arg({ type: SendInput, required: true }) },
    resolve: async (_root, { input }, context) => {
      const id = input.target.id === null || input.target.id === undefined ? null : String(input.target.id);
      const target = await asInput(() => validTarget({ kind: input.target.kind, id }, 'input.target'));
      assertMaySend(context.viewer, target);
      const waitMs = await context.services.sendLimiter.hit(context.viewer.id);
      if (waitMs > 0) throw rateLimitedError('notifications', 'notifications_per_window', waitMs);
      const entry = await asInput(() => context.services.notifications.send({ ...input, target }));
      return itemOf(entry, null, await sentPosition(context, entry));
    },
  }),
);

builder.mutationField('markNotificationsRead', (t) =>
  t.int({
    description:
      'Marks the given notifications (at most 1,000 ids), or all when `all` is true; give exactly one of the two. ' +
      "Returns how many were newly marked: ids that were already read, or are not addressed to the viewer, don't " +
      "count. The viewer's other connections are told with READ or READ_ALL items on `notifications`.",
    args: { ids: t.arg.idList(), all: t.arg.boolean() },
    resolve: async (_root, args, context) => {
      const { notifications } = context.services;
      const audience = audienceOf(context.viewer);
      const hasIds = args.ids !== null && args.ids !== undefined;
      const hasAll = args.all !== null && args.all !== undefined;
      if (hasIds === hasAll) badInput(hasIds ? 'all' : 'ids', 'give exactly one of ids and all');
      if (hasAll) {
        if (args.all !== true) badInput('all', 'all must be true when given');
        return (await notifications.markAllRead(audience)).marked;
      }
      return (await notifications.markRead(audience, notificationRefs(args.ids!, 'ids'))).marked;
    },
  }),
);

for (const [field, state, verb] of [
  ['deleteNotifications', 'DELETED', 'Deletes'],
  ['archiveNotifications', 'ARCHIVED', 'Archives'],
] as const) {
  builder.mutationField(field, (t) =>
    t.int({
      description:
        `${verb} the given notifications (at most 1,000 ids) for the viewer only: everyone else they were sent to still has them. ` +
        'They leave the inbox and the unread count (they count as read), and are no longer sent on `notifications`, ' +
        (state === 'ARCHIVED' ? 'but `notificationInbox(archived: true)` lists them. ' : 'for good. ') +
        `Returns how many were newly ${state.toLowerCase()}; ids not addressed to the viewer, or no longer kept, don't count` +
        (state === 'ARCHIVED' ? ', nor do deleted ones. ' : '. ') +
        `The viewer's other connections are told with ${state} items on \`notifications\`.`,
      args: { ids: t.arg.idList({ required: true }) },
      resolve: async (_root, args, context) =>
        (await context.services.notifications.remove(audienceOf(context.viewer), notificationRefs(args.ids, 'ids'), state))
          .marked,
    }),
  );
}

builder.mutationField('setNotificationPreferences', (t) =>
  t.field({
    type: PreferencesRef,
    description:
      'Sets what the viewer mutes; returns their preferences after the change. Counts and the inbox follow at once; a `notifications` ' +
      'subscription follows from when it is opened (or resumed with its last cursor, which loses nothing).',
    args: { input: t.arg({ type: PreferencesInput, required: true }) },
    resolve: async (_root, { input }, context) => {
      const { notifications } = context.services;
      if (!input.mutedLevels && !input.mutedTargetKinds) badInput('input', 'give mutedLevels, mutedTargetKinds or both');
      const stored = await notifications.preferences(context.viewer.id);
      return asInput(() =>
        notifications.setPreferences(context.viewer.id, {
          mutedLevels: input.mutedLevels ?? stored.mutedLevels,
          mutedTargetKinds: input.mutedTargetKinds ?? stored.mutedTargetKinds,
        }),
      );
    },
  }),
);

builder.subscriptionField('notifications', (t) =>
  t.field({
    type: NotificationRef,
    description:
      'Everything addressed to the viewer (their user, each role and project in their token, and global), ' +
      'and their read receipts (READ, READ_ALL), in one stream: live items as they arrive, items read from ' +
      'history (a replay, a resume) by the time Redis stored them, then target, then their number in it. ' +
      'Without `after`, replays the last REPLAY_ON_CONNECT items, then goes on live; with `after` (the cursor ' +
      'of any item), every item not yet seen at that cursor, none twice, then live. A HISTORY_GAP item comes ' +
      'first when items after `after` are gone. A cursor of the former single notification sequence is ' +
      'refused (BAD_USER_INPUT). Notifications the viewer deleted, archived or muted (as their preferences ' +
      'stood when the subscription opened) are not sent; a cursor passes over them. Never completes by itself.',
    args: { after: t.arg.string() },
    extensions: { [EVENT_CURSOR]: notificationEventCursor },
    subscribe: async (_root, args, context) => {
      const audience = audienceOf(context.viewer);
      const cursor = resumeCursor(context, args.after, (value, argument) => notificationCursor(audience, value, argument));
      const { hub, notifications, config } = context.services;
      try {
        return await openNotificationStream({
          hub,
          store: notifications,
          audience,
          choices: await notifications.choices(context.viewer.id),
          after: cursor,
          replay: config.updates.replayOnConnect,
          queueLimit: config.updates.subscriberQueueLimit,
        });
      } catch (error) {
        if (error instanceof CursorAheadError) badInput('after', `after: ${error.message}`);
        throw error;
      }
    },
    resolve: (event: NotificationStreamEvent, _args, context) =>
      event.type === 'entry' ? itemOf(event.entry, null, event.position) : gapItem(context.viewer, event.gap, event.position),
  }),
);
