import type { Cursor } from '../updates/cursor.js';
import type { EventStream } from '../updates/event-stream.js';
import type { UpdateHub } from '../updates/hub.js';
import { LiveStream, type LiveStreamLimits } from '../updates/live-stream.js';
import { CursorAheadError, type HistoryGap } from '../updates/stream.js';
import type { Audience } from './keys.js';
import type { NotificationSnapshot, NotificationStore, SourceRequest } from './store.js';
import type { NotificationEntry } from './types.js';

/** An entry, or a notice that entries after the client's cursor are gone (sent before anything else). */
export type NotificationStreamEvent = { type: 'entry'; entry: NotificationEntry } | { type: 'gap'; gap: HistoryGap };

export interface NotificationStreamOptions extends LiveStreamLimits {
  hub: UpdateHub;
  store: NotificationStore;
  audience: Audience;
  /** Resume after this position (epoch and n); without one, replay the last `replay` entries. */
  after: Cursor | null;
  replay: number;
}

interface Position {
  /** The last seq delivered from the source (or skipped as before the start). */
  seq: number;
  /** The n the source's next read starts after. */
  n: number;
}

/**
 * One viewer's notifications: every source addressed to them (user, roles, projects, global)
 * and their read receipts, merged by the global n. Each source has its own seq, so a live entry
 * that skips one is preceded by the missing ones read from history; duplicates are dropped.
 * Pub/sub delivers in n order across channels (one Redis, one connection), and the hub holds
 * messages back from a lost connection until the resync, so the merge needs no reordering. Only
 * a message dropped while the connection stayed up is noticed late, at its source's next entry:
 * it then comes after newer ones from other sources, never lost.
 */
class NotificationStream extends LiveStream<NotificationEntry, NotificationStreamEvent> {
  private epoch = '';
  private lastN = 0;
  private readonly positions = new Map<string, Position>();
  private readonly sources: string[];

  constructor(private readonly options: NotificationStreamOptions) {
    super(options.hub, options);
    this.sources = [...options.audience.targets, options.audience.receipts];
  }

  channels(): string[] {
    return this.sources.map((source) => this.options.store.channel(source));
  }

  /** Reads every source in one snapshot, each from where `range` says. */
  private read(range: (source: string) => SourceRequest['range']): Promise<NotificationSnapshot> {
    return this.options.store.snapshot(this.sources.map((source) => ({ source, range: range(source) })));
  }

  protected async open(): Promise<void> {
    const { after, replay } = this.options;
    if (after) {
      const snapshot = await this.read(() => ({ after: after.seq }));
      if (snapshot.epoch !== after.epoch) return this.restart();
      if (after.seq > snapshot.lastN) {
        throw new CursorAheadError(`cursor is at ${after.seq} but notifications are at ${snapshot.lastN}`);
      }
      this.startFrom(snapshot, after.seq, true);
      return;
    }
    const snapshot = await this.read(() => ({ last: replay }));
    this.startFrom(snapshot, replayStart(snapshot, replay), false);
  }

  protected resync(): Promise<void> {
    return this.catchUp();
  }

  /** A skipped seq is filled by reading every source, so entries still waiting live keep their order. */
  protected receive(entry: NotificationEntry): Promise<void> | void {
    const position = this.positions.get(entry.source);
    if (entry.epoch !== this.epoch) return this.catchUp();
    if (!position || entry.seq <= position.seq) return;
    if (entry.seq === position.seq + 1) return this.accept(entry);
    return this.catchUp();
  }

  /** Starts every source at `start` (an n) and emits what the snapshot holds after it, oldest first. */
  private startFrom(snapshot: NotificationSnapshot, start: number, checkTrimmed: boolean): void {
    this.epoch = snapshot.epoch;
    this.lastN = start;
    for (const [source, read] of snapshot.sources) {
      const first = read.entries.find((entry) => entry.n > start);
      this.positions.set(source, { seq: first ? first.seq - 1 : read.seq, n: start });
    }
    if (checkTrimmed) this.noticeTrimmed(snapshot);
    this.emitMerged(snapshot);
  }

  /** The epoch changed (Redis lost the history): say so, then start again from everything kept. */
  private async restart(): Promise<void> {
    const snapshot = await this.read(() => ({ after: 0 }));
    this.emit({ type: 'gap', gap: { reason: 'EPOCH_CHANGED', epoch: snapshot.epoch, resumesAfter: 0 } });
    this.startFrom(snapshot, 0, false);
  }

  /** Reads what every source holds after its position. */
  private async catchUp(): Promise<void> {
    const snapshot = await this.read((source) => ({ after: this.positions.get(source)!.n }));
    if (snapshot.epoch !== this.epoch) return this.restart();
    this.noticeTrimmed(snapshot);
    this.emitMerged(snapshot);
  }

  /**
   * Retention removed entries this viewer had not received yet: tell them once, before going on.
   * Retention removes a source's oldest entries first, so its position moves past all of them.
   */
  private noticeTrimmed(snapshot: NotificationSnapshot): void {
    let trimmed = false;
    for (const [source, read] of snapshot.sources) {
      const position = this.positions.get(source)!;
      if (read.trimmedUpTo > position.n) {
        position.n = read.trimmedUpTo;
        trimmed = true;
      }
    }
    if (trimmed) this.emit({ type: 'gap', gap: { reason: 'TRIMMED', epoch: this.epoch, resumesAfter: this.lastN } });
  }

  private emitMerged(snapshot: NotificationSnapshot): void {
    const entries = [...snapshot.sources.values()].flatMap((read) => read.entries);
    for (const entry of entries.sort((a, b) => a.n - b.n)) this.accept(entry);
  }

  private accept(entry: NotificationEntry): void {
    const position = this.positions.get(entry.source);
    if (!position || entry.seq <= position.seq || entry.n <= position.n) return;
    position.seq = entry.seq;
    position.n = entry.n;
    this.lastN = Math.max(this.lastN, entry.n);
    this.emit({ type: 'entry', entry });
  }
}

/**
 * Where a replay of the last `replay` entries over several sources starts: no earlier than the
 * oldest entry of the merged last `replay`, and no earlier than the oldest entry read of a source
 * that may hold more than was read.
 */
function replayStart(snapshot: NotificationSnapshot, replay: number): number {
  if (replay <= 0) return snapshot.lastN;
  const reads = [...snapshot.sources.values()];
  const ns = reads.flatMap((read) => read.entries.map((entry) => entry.n)).sort((a, b) => a - b);
  let start = ns.at(-replay - 1) ?? 0;
  for (const { entries } of reads) {
    const [oldest] = entries;
    if (oldest && entries.length >= replay) start = Math.max(start, oldest.n - 1);
  }
  return start;
}

/**
 * Opens a viewer's notification stream; resolves once every channel is confirmed and the first
 * read is queued, so a cursor from the future rejects here, before anything is sent.
 */
export async function openNotificationStream(options: NotificationStreamOptions): Promise<EventStream<NotificationStreamEvent>> {
  const stream = new NotificationStream(options);
  await stream.start(stream.channels());
  return stream;
}
