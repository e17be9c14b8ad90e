import type { Redis } from 'ioredis';
import { defineScript, execChecked, publishCommand, readScript } from '../redis.js';
import { newEpoch } from '../updates/cursor.js';
import type { HistoryRange } from '../updates/store.js';
import { notificationKeys, targetSource, type Audience } from './keys.js';
import { validNotification, type NotificationEntry, type NotificationInput, type UnreadCounts } from './types.js';

/** The store's one script, shipped as a file so producers in other languages can load the same one. */
export const NOTIFY_SCRIPT = readScript(new URL('./notify.lua', import.meta.url));

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

/** One source as read in a snapshot. */
export interface SourceRead {
  /** The last seq assigned in the source; 0 when none. */
  seq: number;
  /** The highest n retention has removed from the source; 0 when none. */
  trimmedUpTo: number;
  entries: NotificationEntry[];
}

/** Several sources read in one MULTI, so counters and entries agree. */
export interface NotificationSnapshot {
  epoch: string;
  /** The last n assigned, in any source. */
  lastN: number;
  sources: Map<string, SourceRead>;
}

/** What a source read asks for: entries after an n, or the last few. */
export interface SourceRequest {
  source: string;
  range: HistoryRange;
}

export interface InboxPage {
  epoch: string;
  /** Newest first, each with whether the viewer has read it. */
  items: Array<{ entry: NotificationEntry; read: boolean }>;
  hasNextPage: boolean;
}

/** What a notification id names: its history and its number. The script makes ids as `<epoch>-<n>`. */
export interface NotificationRef {
  epoch: string;
  n: number;
}

/** Null for anything that is not an id this store made. */
export function parseNotificationId(id: string): NotificationRef | null {
  const match = /^([a-z0-9]{1,32})-(\d{1,15})$/.exec(id);
  const [, epoch, n] = match ?? [];
  return epoch === undefined ? null : { epoch, n: Number(n) };
}

/** notify.lua's reply to each read-state operation. */
interface ReadStateReply {
  read: [marked: number, unread: number];
  read_all: [marked: number, unread: number];
  unread: [total: number, INFO: number, SUCCESS: number, WARNING: number, ERROR: number];
}

export interface MarkResult {
  /** How many notifications this call marked that were unread before. */
  marked: number;
  unread: number;
}

function readMember(n: number, source: string): string {
  return `${n}|${source}`;
}

/**
 * The notification store: the only code that writes notifications and read state, for the API
 * and for workers alike. Knows Redis and nothing of GraphQL.
 */
export function createNotificationStore(redis: Redis, options: NotificationStoreOptions) {
  const keys = notificationKeys(options.keyPrefix);
  const retentionMs = options.retentionDays * 24 * 3600 * 1000;
  const receiptCount = options.receiptCount ?? 100;
  const receiptTtlMs = (options.receiptTtlSeconds ?? 24 * 3600) * 1000;
  const notify = defineScript<string | number[]>(redis, 'heraldNotify', NOTIFY_SCRIPT);

  function run(op: string, keyList: string[], params: Record<string, unknown>, extra: string[] = []) {
    const all = [keys.meta, keys.timeline, ...keyList];
    const args = [
      op,
      JSON.stringify({ epoch: newEpoch(), base: keys.base, publish: publishCommand(redis), ...params }),
      ...extra,
    ];
    return notify(all.length, ...all, ...args);
  }

  /** Runs a read-state operation for one viewer: its keys are the viewer's, its receipts theirs. */
  async function readState<Op extends keyof ReadStateReply>(
    op: Op,
    audience: Audience,
    ids: NotificationRef[] = [],
  ): Promise<ReadStateReply[Op]> {
    const result = await run(
      op,
      [
        keys.watermark(audience.userId),
        keys.readSet(audience.userId),
        keys.source(audience.receipts),
        ...audience.targets.map(keys.source),
      ],
      {
        targets: audience.targets,
        receipts: audience.receipts,
        channel: keys.channel(audience.receipts),
        limit: receiptCount,
        ttlMs: receiptTtlMs,
        readTtl: Math.ceil(retentionMs / 1000),
        ids: ids.map(({ epoch, n }) => [epoch, n]),
      },
    );
    return result as ReadStateReply[Op];
  }

  /** The watermark and the read set, to tell read from unread outside the script. */
  async function readMarks(userId: string): Promise<{ watermark: number; read: Set<string> }> {
    const [watermark, members] = (await execChecked(
      redis.multi().get(keys.watermark(userId)).zrange(keys.readSet(userId), 0, -1),
    )) as [string | null, string[]];
    return { watermark: Number(watermark ?? 0), read: new Set(members) };
  }

  return {
    /** Stores and publishes one notification in one step; throws InvalidNotificationError for bad input. */
    async send(input: NotificationInput): Promise<NotificationEntry> {
      const valid = validNotification(input);
      const source = targetSource(valid.target);
      const members =
        `"level":${JSON.stringify(valid.level)},"target":${JSON.stringify(valid.target)},` +
        `"title":${JSON.stringify(valid.title)},"body":${JSON.stringify(valid.body)},` +
        `"data":${JSON.stringify(valid.data) ?? 'null'},"createdAt":${JSON.stringify(new Date().toISOString())}`;
      const entry = await run(
        'send',
        [keys.source(source)],
        { source, channel: keys.channel(source), limit: options.retentionCount, ttlMs: retentionMs },
        [members],
      );
      return JSON.parse(entry as string) as NotificationEntry;
    },

    /** Marks the given notifications that exist and are addressed to the viewer; tells their other tabs. */
    async markRead(audience: Audience, ids: NotificationRef[]): Promise<MarkResult> {
      const [marked, unread] = await readState('read', audience, ids);
      return { marked, unread };
    },

    /** Marks everything addressed to the viewer so far; tells their other tabs. */
    async markAllRead(audience: Audience): Promise<MarkResult> {
      const [marked, unread] = await readState('read_all', audience);
      return { marked, unread };
    },

    async unread(audience: Audience): Promise<{ total: number; byLevel: UnreadCounts }> {
      const [total, INFO, SUCCESS, WARNING, ERROR] = await readState('unread', audience);
      return { total, byLevel: { INFO, SUCCESS, WARNING, ERROR } };
    },

    /** Whether the viewer has read notification `n` of `source`. */
    async isRead(userId: string, n: number, source: string): Promise<boolean> {
      const [watermark, score] = (await execChecked(
        redis.multi().get(keys.watermark(userId)).zscore(keys.readSet(userId), readMember(n, source)),
      )) as [string | null, string | null];
      return n <= Number(watermark ?? 0) || score !== null;
    },

    /**
     * The viewer's notifications older than `before` (an n; null for the newest), newest first,
     * merged over every source addressed to them.
     */
    async inbox(audience: Audience, page: { before: number | null; first: number; unreadOnly: boolean }): Promise<InboxPage> {
      const { watermark, read } = await readMarks(audience.userId);
      const isRead = (entry: NotificationEntry) => entry.n <= watermark || read.has(readMember(entry.n, entry.source));
      const max = page.before === null ? '+inf' : `(${page.before}`;
      const min = page.unreadOnly ? `(${watermark}` : '-inf';
      const perSource = page.first + 1 + (page.unreadOnly ? read.size : 0);
      const tx = redis.multi().hsetnx(keys.meta, 'epoch', newEpoch()).hget(keys.meta, 'epoch');
      for (const source of audience.targets) tx.zrevrangebyscore(keys.source(source), max, min, 'LIMIT', 0, perSource);
      const [, epoch, ...lists] = (await execChecked(tx)) as [number, string, ...string[][]];
      const items = lists
        .flat()
        .map((member) => JSON.parse(member) as NotificationEntry)
        .sort((a, b) => b.n - a.n)
        .map((entry) => ({ entry, read: isRead(entry) }))
        .filter((item) => !page.unreadOnly || !item.read);
      return { epoch, items: items.slice(0, page.first), hasNextPage: items.length > page.first };
    },

    /** Reads several sources in one MULTI; starts the epoch when there is none yet. */
    async snapshot(requests: SourceRequest[]): Promise<NotificationSnapshot> {
      const fields = requests.flatMap(({ source }) => [`seq:${source}`, `trimmed:${source}`]);
      const tx = redis
        .multi()
        .hsetnx(keys.meta, 'epoch', newEpoch())
        .hmget(keys.meta, 'epoch', 'n', ...fields);
      for (const { source, range } of requests) {
        const key = keys.source(source);
        if ('after' in range) tx.zrangebyscore(key, `(${range.after}`, '+inf');
        else tx.zrange(key, -Math.max(range.last, 1), -1);
      }
      const [, counters, ...lists] = (await execChecked(tx)) as [number, Array<string | null>, ...string[][]];
      const sources = new Map<string, SourceRead>();
      requests.forEach(({ source, range }, i) => {
        const members = 'last' in range && range.last <= 0 ? [] : lists[i]!;
        sources.set(source, {
          seq: Number(counters[2 + 2 * i] ?? 0),
          trimmedUpTo: Number(counters[3 + 2 * i] ?? 0),
          entries: members.map((member) => JSON.parse(member) as NotificationEntry),
        });
      });
      return { epoch: counters[0]!, lastN: Number(counters[1] ?? 0), sources };
    },

    channel(source: string): string {
      return keys.channel(source);
    },
  };
}

export type NotificationStore = ReturnType<typeof createNotificationStore>;
