import type { ChainableCommander, Redis } from 'ioredis';
import { defineScript, execChecked, publishCommand, readScript } from '../redis.js';
import { ID_CHARACTERS } from '../ids.js';
import { newEpoch } from '../updates/cursor.js';
import { sameEpoch, type NotificationCursor } from './cursor.js';
import { kindOf, notificationKeys, targetSource, type Audience } from './keys.js';
import {
  compareEntries,
  isMuted,
  NOTIFICATION_LEVELS,
  TARGET_KINDS,
  validNotification,
  validPreferences,
  type NotificationEntry,
  type NotificationInput,
  type NotificationLevel,
  type NotificationPreferences,
  type RemovedState,
  type UnreadCounts,
} from './types.js';

/** The store's one script, shipped as a file so producers in other languages can load the same one. */
export const NOTIFY_SCRIPT = readScript(new URL('./notify.lua', import.meta.url));

/** The largest batch an inbox page reads from one source at once (see readListed). */
const MAX_READ_BATCH = 1_000;

export interface NotificationStoreOptions {
  keyPrefix: string;
  /** Notifications kept per target. */
  retentionCount: number;
  retentionDays: number;
  /** Read receipts kept per user; default 100. They only tell a user's other tabs what changed. */
  receiptCount?: number;
  /** Default one day. */
  receiptTtlSeconds?: number;
}

/** Which of a source's entries to read, by seq: above `after`, up to `upTo`, at most `limit`, the newest first when `newest`. */
export interface SourceRange {
  after?: number;
  upTo?: number;
  limit?: number;
  newest?: boolean;
}

/** One source as read in one step, so its counter and entries agree. */
export interface SourceRead {
  /** Empty until the source's first entry. */
  epoch: string;
  /** The last seq assigned in the source; 0 when none. */
  seq: number;
  /** The oldest and newest entries retention still keeps. */
  oldest: NotificationEntry | null;
  newest: NotificationEntry | null;
  /** What the range asked for, oldest first. */
  entries: NotificationEntry[];
}

/** Which of the viewer's notifications an inbox page lists; the defaults list what a user expects to see. */
export interface InboxFilter {
  /** Only those the viewer has not read. Default false. */
  unreadOnly?: boolean;
  /** Also those the viewer's preferences mute. Default false. */
  includeMuted?: boolean;
  /** Only those the viewer archived, instead of only those they did not. Default false. */
  archived?: boolean;
}

/**
 * What a viewer removed and muted, as one stream or page sees it. `removed` grows as the stream
 * sees the viewer's DELETED and ARCHIVED receipts.
 */
export interface ViewerChoices {
  preferences: NotificationPreferences;
  /** Notification id -> what the viewer did with it. */
  removed: Map<string, RemovedState>;
}

/**
 * Whether `entry` belongs in a list under `filter` (read state aside): never when deleted; when
 * archived only in the archived list; when muted only with `includeMuted`. Receipts always do.
 */
export function isListed(choices: ViewerChoices, entry: NotificationEntry, filter: InboxFilter = {}): boolean {
  if (entry.event !== 'CREATED') return true;
  const removed = choices.removed.get(entry.notification.id);
  if (removed === 'DELETED' || (removed === 'ARCHIVED') !== (filter.archived ?? false)) return false;
  return (filter.includeMuted ?? false) || !isMuted(choices.preferences, entry.notification);
}

export interface InboxPage {
  /** False when the `before` cursor names a history of a target that Redis has lost. */
  current: boolean;
  /** Newest first, each with whether the viewer has read it and the cursor the inbox continues after. */
  items: Array<{ entry: NotificationEntry; read: boolean; cursor: NotificationCursor }>;
  hasNextPage: boolean;
}

/** What a notification id names: its target's history and its seq there. The script makes ids as `<epoch>-<seq>-<source>`. */
export interface NotificationRef {
  epoch: string;
  seq: number;
  source: string;
}

const NOTIFICATION_ID = new RegExp(`^([a-z0-9]{1,32})-(\\d{1,15})-((?:user|role|project):[${ID_CHARACTERS}]{1,128}|global)$`);

/** Null for anything that is not an id this store made. */
export function parseNotificationId(id: string): NotificationRef | null {
  const match = NOTIFICATION_ID.exec(id);
  const [, epoch, seq, source] = match ?? [];
  return epoch === undefined || source === undefined ? null : { epoch, seq: Number(seq), source };
}

/** The preferences hash's fields as notify.lua reads them: names, comma-separated. */
function preferencesOf(levels: string | null, kinds: string | null): NotificationPreferences {
  const names = (value: string | null) => (value ? value.split(',') : []);
  return {
    mutedLevels: NOTIFICATION_LEVELS.filter((level) => names(levels).includes(level)),
    mutedTargetKinds: TARGET_KINDS.filter((kind) => names(kinds).includes(kind)),
  };
}

/** The replies of choicesRead: the preferences hash's fields, then the removed hash. */
type ChoicesReply = [[string | null, string | null], Record<string, RemovedState>];

/** What the viewer muted and removed, from choicesRead's replies. */
function choicesOf(levels: string | null, kinds: string | null, removed: Record<string, RemovedState>): ViewerChoices {
  return { preferences: preferencesOf(levels, kinds), removed: new Map(Object.entries(removed)) };
}

/** notify.lua's reply to each read-state operation. */
interface ReadStateReply {
  mark: [marked: number, unread: number];
  mark_all: [marked: number, unread: number];
  unread: [total: number, INFO: number, SUCCESS: number, WARNING: number, ERROR: number];
}

export interface MarkResult {
  /** How many notifications this call marked that were unread before. */
  marked: number;
  unread: number;
}

/** What the read-state steps need of one target, read just before (see notify.lua). */
interface TargetStats {
  s: string;
  e: string;
  top: number;
  lc: number[];
  fs: number;
  fc: number[];
}

function statsOf(source: string, read: SourceRead): TargetStats {
  const { oldest, newest } = read;
  if (!oldest?.c || !newest?.c) return { s: source, e: read.epoch, top: 0, lc: [0, 0, 0, 0], fs: 0, fc: [0, 0, 0, 0] };
  const level = NOTIFICATION_LEVELS.indexOf(oldest.notification.level);
  return {
    s: source,
    e: read.epoch,
    top: newest.seq,
    lc: newest.c,
    fs: oldest.seq - 1,
    fc: oldest.c.map((count, i) => (i === level ? count - 1 : count)),
  };
}

function readMember(source: string, epoch: string, seq: number, level: NotificationLevel): string {
  return `${source}|${epoch}|${seq}|${level}`;
}

/** A user's watermark of one target: everything up to `seq` of history `epoch` is read. */
function parseWatermark(value: string | undefined): { epoch: string; seq: number } | null {
  if (value === undefined) return null;
  const [epoch, seq] = JSON.parse(value) as [string, number];
  return { epoch, seq };
}

/**
 * The notification store: the only code that writes notifications and read state, for the API
 * and for workers alike. Every step touches one source's keys (one hash tag), so a Redis Cluster
 * spreads the targets over its shards. Knows Redis and nothing of GraphQL.
 */
export function createNotificationStore(redis: Redis, options: NotificationStoreOptions) {
  const keys = notificationKeys(options.keyPrefix);
  const retentionMs = options.retentionDays * 24 * 3600 * 1000;
  const receiptCount = options.receiptCount ?? 100;
  const receiptTtlMs = (options.receiptTtlSeconds ?? 24 * 3600) * 1000;
  const notify = defineScript<string | Array<string | number>>(redis, 'heraldNotify', NOTIFY_SCRIPT);

  function run(op: string, source: string, params: Record<string, unknown>, extra: string[] = [], keyList: string[] = []) {
    const all = [keys.meta(source), keys.entries(source), ...keyList];
    return notify(all.length, ...all, op, JSON.stringify({ epoch: newEpoch(), ...params }), ...extra);
  }

  async function read(source: string, range: SourceRange): Promise<SourceRead> {
    const ttlMs = source.startsWith('receipts:') ? receiptTtlMs : retentionMs;
    const reply = (await run('read', source, {
      ttlMs,
      min: range.after === undefined ? '-inf' : `(${range.after}`,
      max: range.upTo ?? '+inf',
      limit: range.limit ?? -1,
      rev: range.newest ?? false,
    })) as [string, number, string, string, ...string[]];
    const [epoch, seq, oldest, newest, ...members] = reply;
    const parse = (member: string) => JSON.parse(member) as NotificationEntry;
    const entries = members.map(parse);
    if (range.newest) entries.reverse();
    return { epoch, seq, oldest: oldest ? parse(oldest) : null, newest: newest ? parse(newest) : null, entries };
  }

  /** Reads every target of the viewer, oldest and newest entry only. */
  async function stats(audience: Audience): Promise<Map<string, SourceRead>> {
    const reads = await Promise.all(audience.targets.map((source) => read(source, { limit: 0 })));
    return new Map(audience.targets.map((source, i) => [source, reads[i]!]));
  }

  /** Runs a read-state step in the viewer's own slot, with what its targets hold. */
  async function readState<Op extends keyof ReadStateReply>(
    op: Op,
    audience: Audience,
    targets: Map<string, SourceRead>,
    params: Record<string, unknown> = {},
  ): Promise<ReadStateReply[Op]> {
    const result = await run(
      op,
      audience.receipts,
      {
        stats: [...targets].map(([source, read]) => statsOf(source, read)),
        source: audience.receipts,
        channel: keys.channel(audience.receipts),
        publish: publishCommand(redis),
        limit: receiptCount,
        ttlMs: receiptTtlMs,
        readTtl: Math.ceil(retentionMs / 1000),
        ...params,
      },
      [],
      [
        keys.watermarks(audience.userId),
        keys.readSet(audience.userId),
        keys.preferences(audience.userId),
        keys.removed(audience.userId),
      ],
    );
    return result as ReadStateReply[Op];
  }

  /** Adds to `tx` the reads of what the viewer muted and removed; see choicesOf. */
  function choicesRead(tx: ChainableCommander, userId: string): ChainableCommander {
    return tx.hmget(keys.preferences(userId), 'levels', 'kinds').hgetall(keys.removed(userId));
  }

  /**
   * The watermarks and the read set, to tell read from unread outside the script, and what the
   * viewer removed and muted; one read of the viewer's slot.
   */
  async function readMarks(userId: string) {
    const [watermarks, members, [levels, kinds], removed] = (await execChecked(
      choicesRead(redis.multi().hgetall(keys.watermarks(userId)).smembers(keys.readSet(userId)), userId),
    )) as [Record<string, string>, string[], ...ChoicesReply];
    const read = new Set(members);
    return {
      choices: choicesOf(levels, kinds, removed),
      read,
      watermark: (source: string) => parseWatermark(watermarks[source]),
      isRead(entry: NotificationEntry): boolean {
        const mark = parseWatermark(watermarks[entry.source]);
        if (mark && mark.epoch === entry.epoch && entry.seq <= mark.seq) return true;
        return read.has(readMember(entry.source, entry.epoch, entry.seq, entry.notification.level));
      },
      /** How many of the read set belong to `source`: at most that many read entries sit above its watermark. */
      readIn: (source: string) => members.filter((member) => member.startsWith(`${source}|`)).length,
    };
  }

  /**
   * A source's entries at or below `upTo`, newest first in batches, until `need` of them are
   * `listed` or the source (or, above a `floor` watermark of its history, what is unread) runs
   * out. The entries come back as one run of seqs, oldest first, listed or not, so an inbox
   * cursor can be taken at any of them; none at or below the floor. Each batch is twice the one
   * before (up to MAX_READ_BATCH): a page behind many muted or removed entries takes a few reads,
   * not one per page's worth of them.
   */
  async function readListed(
    source: string,
    options: {
      upTo?: number;
      need: number;
      batch: number;
      floor: { epoch: string; seq: number } | null;
      listed: (entry: NotificationEntry) => boolean;
    },
  ): Promise<SourceRead> {
    const { need, listed } = options;
    let limit = options.batch;
    const first = await read(source, { upTo: options.upTo, limit, newest: true });
    const floor = options.floor?.epoch === first.epoch ? options.floor.seq : 0;
    let batch = first.entries.filter((entry) => entry.seq > floor);
    const newestFirst = [batch];
    let found = batch.filter(listed).length;
    while (found < need && batch.length === limit && batch[0]!.seq - 1 > floor) {
      limit = Math.min(limit * 2, Math.max(MAX_READ_BATCH, options.batch));
      const next = await read(source, { after: floor, upTo: batch[0]!.seq - 1, limit, newest: true });
      if (next.epoch !== first.epoch) break;
      batch = next.entries;
      newestFirst.push(batch);
      found += batch.filter(listed).length;
    }
    return { ...first, entries: newestFirst.reverse().flat() };
  }

  /** Marks read (and with `remove`, removes) the given notifications that are kept and addressed to the viewer. */
  async function mark(audience: Audience, refs: NotificationRef[], remove?: RemovedState): Promise<MarkResult> {
    const mine = refs.filter((ref) => audience.targets.includes(ref.source));
    const [targets, found] = await Promise.all([
      stats(audience),
      Promise.all(mine.map((ref) => read(ref.source, { after: ref.seq - 1, upTo: ref.seq, limit: 1 }))),
    ]);
    const ids = found.flatMap(({ epoch, entries: [entry] }, i) =>
      entry && epoch === mine[i]!.epoch
        ? [
            {
              id: entry.notification.id,
              s: entry.source,
              e: epoch,
              seq: entry.seq,
              level: entry.notification.level,
              notification: JSON.stringify(entry.notification),
            },
          ]
        : [],
    );
    const [marked, unread] = await readState('mark', audience, targets, { ids, remove });
    return { marked, unread };
  }

  return {
    /** Stores and publishes one notification in one step; throws InvalidNotificationError for bad input. */
    /**
     * Stores and publishes a notification. With `sendId` (a producer's id for it, such as one
     * derived from an HTTP Idempotency-Key), sending it again returns the first entry and sends
     * nothing, as long as the notification is kept.
     */
    async send(input: NotificationInput, sendId?: string): Promise<NotificationEntry> {
      const valid = validNotification(input);
      const source = targetSource(valid.target);
      const members =
        `"level":${JSON.stringify(valid.level)},"target":${JSON.stringify(valid.target)},` +
        `"title":${JSON.stringify(valid.title)},"body":${JSON.stringify(valid.body)},` +
        `"data":${JSON.stringify(valid.data) ?? 'null'},"createdAt":${JSON.stringify(new Date().toISOString())}`;
      const entry = await run(
        'send',
        source,
        {
          source,
          channel: keys.channel(source),
          publish: publishCommand(redis),
          limit: options.retentionCount,
          ttlMs: retentionMs,
          sendId,
        },
        [members],
        [keys.sendIds(source)],
      );
      return JSON.parse(entry as string) as NotificationEntry;
    },

    /** Marks the given notifications that are kept and addressed to the viewer; tells their other tabs. */
    markRead(audience: Audience, refs: NotificationRef[]): Promise<MarkResult> {
      return mark(audience, refs);
    },

    /**
     * Deletes or archives the given notifications that are kept and addressed to the viewer, for
     * the viewer only, and marks them read; tells their other tabs. `marked` counts those newly
     * removed (a deleted one stays deleted).
     */
    remove(audience: Audience, refs: NotificationRef[], state: RemovedState): Promise<MarkResult> {
      return mark(audience, refs, state);
    },

    /** The levels and target kinds the user muted. */
    async preferences(userId: string): Promise<NotificationPreferences> {
      const [levels, kinds] = await redis.hmget(keys.preferences(userId), 'levels', 'kinds');
      return preferencesOf(levels ?? null, kinds ?? null);
    },

    /** Replaces the user's preferences; throws InvalidNotificationError for a name that is not a level or kind. */
    async setPreferences(userId: string, preferences: NotificationPreferences): Promise<NotificationPreferences> {
      const valid = validPreferences(preferences);
      await redis.hset(keys.preferences(userId), {
        levels: valid.mutedLevels.join(','),
        kinds: valid.mutedTargetKinds.join(','),
      });
      return valid;
    },

    /** What the viewer removed and muted, for a stream to leave out. */
    async choices(userId: string): Promise<ViewerChoices> {
      const [[levels, kinds], removed] = (await execChecked(choicesRead(redis.multi(), userId))) as ChoicesReply;
      return choicesOf(levels, kinds, removed);
    },

    /** Marks everything addressed to the viewer so far; tells their other tabs. */
    async markAllRead(audience: Audience): Promise<MarkResult> {
      const targets = await stats(audience);
      const newest = [...targets.values()]
        .flatMap((read) => (read.newest ? [read.newest] : []))
        .sort(compareEntries)
        .at(-1);
      if (!newest) return { marked: 0, unread: 0 };
      const [marked, unread] = await readState('mark_all', audience, targets, { newest: JSON.stringify(newest.notification) });
      return { marked, unread };
    },

    /** Counted from each target's newest and oldest kept entries, not by reading every notification. */
    /** Where each of the viewer's targets stands now: its epoch and last seq. */
    async positions(audience: Audience): Promise<NotificationCursor['sources']> {
      const reads = await stats(audience);
      return new Map([...reads].map(([source, { epoch, seq }]) => [source, { epoch, seq }]));
    },

    async unread(audience: Audience): Promise<{ total: number; byLevel: UnreadCounts }> {
      const [total, INFO, SUCCESS, WARNING, ERROR] = await readState('unread', audience, await stats(audience));
      return { total, byLevel: { INFO, SUCCESS, WARNING, ERROR } };
    },

    /** Whether the viewer has read `entry`. */
    async isRead(userId: string, entry: NotificationEntry): Promise<boolean> {
      return (await readMarks(userId)).isRead(entry);
    },

    /**
     * The viewer's notifications older than the item `before` was taken at (null for the newest),
     * newest first by stored time, then source, then seq, merged over every target addressed to them.
     */
    async inbox(
      audience: Audience,
      page: { before: NotificationCursor | null; first: number } & InboxFilter,
    ): Promise<InboxPage> {
      const { before, first, unreadOnly = false } = page;
      const marks = await readMarks(audience.userId);
      const listed = (entry: NotificationEntry) => isListed(marks.choices, entry, page) && (!unreadOnly || !marks.isRead(entry));
      const muted = (source: string) => !page.includeMuted && marks.choices.preferences.mutedTargetKinds.includes(kindOf(source));
      const reads = await Promise.all(
        audience.targets.map(async (source) => {
          const bound = before ? (before.sources.get(source)?.seq ?? 0) - (before.pivot === source ? 1 : 0) : null;
          if ((bound !== null && bound <= 0) || muted(source)) return null;
          const result = await readListed(source, {
            upTo: bound ?? undefined,
            need: first + 1,
            batch: first + 1 + marks.readIn(source),
            floor: unreadOnly ? marks.watermark(source) : null,
            listed,
          });
          return result;
        }),
      );
      const current = audience.targets.every((source, i) => {
        const named = before?.sources.get(source);
        const read = reads[i];
        return !named || !read || sameEpoch(read.epoch, named.epoch);
      });
      const items = reads
        .flatMap((read) => read?.entries.filter(listed) ?? [])
        .sort((a, b) => compareEntries(b, a))
        .slice(0, first + 1);
      return {
        current,
        items: items.slice(0, first).map((entry) => ({
          entry,
          read: marks.isRead(entry),
          cursor: inboxCursor(entry, audience.targets, reads),
        })),
        hasNextPage: items.length > first,
      };
    },

    read,

    channel(source: string): string {
      return keys.channel(source);
    },
  };
}

/**
 * The cursor after inbox item `item`: per target, the last seq at or before it in the inbox's
 * order. A target's entries were read as one run of seqs, newest first, at least as far back as
 * the item (or as far as it goes).
 */
function inboxCursor(item: NotificationEntry, targets: string[], reads: Array<SourceRead | null>): NotificationCursor {
  const sources = new Map<string, { epoch: string; seq: number }>();
  targets.forEach((source, i) => {
    const read = reads[i];
    if (!read || read.entries.length === 0) return;
    const atOrBefore = read.entries.filter((entry) => compareEntries(entry, item) <= 0).at(-1);
    sources.set(source, { epoch: read.epoch, seq: atOrBefore ? atOrBefore.seq : read.entries[0]!.seq - 1 });
  });
  return { sources, pivot: item.source };
}

export type NotificationStore = ReturnType<typeof createNotificationStore>;
