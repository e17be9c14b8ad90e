import type { EventStream } from '../updates/event-stream.js';
import type { UpdateHub } from '../updates/hub.js';
import { LiveStream, type LiveStreamLimits } from '../updates/live-stream.js';
import { CursorAheadError, type HistoryGap } from '../updates/stream.js';
import { sameEpoch, type NotificationCursor, type SourcePosition } from './cursor.js';
import type { Audience } from './keys.js';
import { isListed, type NotificationStore, type SourceRange, type SourceRead, type ViewerChoices } from './store.js';
import { compareEntries, type NotificationEntry } from './types.js';

/**
 * An entry, or a notice that entries after the client's cursor are gone (sent before anything
 * else); each with the viewer's position right after it, which is the item's cursor.
 */
export type NotificationStreamEvent =
  | { type: 'entry'; entry: NotificationEntry; position: NotificationCursor }
  | { type: 'gap'; gap: HistoryGap; position: NotificationCursor };

export interface NotificationStreamOptions extends LiveStreamLimits {
  hub: UpdateHub;
  store: NotificationStore;
  audience: Audience;
  /**
   * What the viewer removed and muted when the stream opened: their CREATED entries pass by
   * unsent (the position still moves past them). Removals the stream sees later join it.
   * Default: nothing removed or muted.
   */
  choices?: ViewerChoices;
  /** Resume after this position; without one, replay the last `replay` entries. */
  after: NotificationCursor | null;
  replay: number;
}

/**
 * One viewer's notifications: every source addressed to them (user, roles, projects, global)
 * and their read receipts. Each source lives in its own slot with its own seq, so there is no
 * order across sources but time: live entries go out as they arrive, and what is read from
 * history (a replay, a resume, a catch-up) goes out by stored time, then source, then seq. The
 * position (the cursor) is the last seq delivered of each source, so a resume after any item
 * gives exactly what was not delivered yet. A live entry that skips a seq is preceded by the
 * missing ones read from its source; duplicates are dropped. Notifications the viewer removed or
 * muted are passed over, not sent.
 */
class NotificationStream extends LiveStream<NotificationEntry, NotificationStreamEvent> {
  private readonly positions = new Map<string, SourcePosition>();
  private readonly sources: string[];
  private readonly choices: ViewerChoices;

  constructor(private readonly options: NotificationStreamOptions) {
    super(options.hub, options);
    this.sources = [...options.audience.targets, options.audience.receipts];
    this.choices = options.choices ?? { preferences: { mutedLevels: [], mutedTargetKinds: [] }, removed: new Map() };
  }

  channels(): string[] {
    return this.sources.map((source) => this.options.store.channel(source));
  }

  private read(sources: string[], range: (source: string) => SourceRange): Promise<SourceRead[]> {
    return Promise.all(sources.map((source) => this.options.store.read(source, range(source))));
  }

  protected async open(): Promise<void> {
    const { after, replay } = this.options;
    if (after) {
      const from = (source: string) => after.sources.get(source)?.seq ?? 0;
      const reads = await this.read(this.sources, (source) => ({ after: from(source) }));
      const lost = new Set<string>();
      this.sources.forEach((source, i) => {
        const read = reads[i]!;
        const named = after.sources.get(source);
        if (named && !sameEpoch(read.epoch, named.epoch)) {
          lost.add(source);
          this.positions.set(source, { epoch: read.epoch, seq: 0 });
          return;
        }
        if (from(source) > read.seq) {
          throw new CursorAheadError(`cursor is at ${from(source)} of ${source}, which is at ${read.seq}`);
        }
        this.positions.set(source, { epoch: read.epoch, seq: from(source) });
      });
      if (lost.size > 0) return this.restart(lost);
      this.emitRead(this.sources, reads);
      return;
    }
    const reads = await this.read(this.sources, () => ({ limit: Math.max(replay, 0), newest: true }));
    const merged = reads.flatMap((read) => read.entries).sort(compareEntries);
    const listed = merged.filter((entry) => isListed(this.choices, entry));
    const replayed = new Set(replay > 0 ? listed.slice(-replay) : []);
    this.sources.forEach((source, i) => {
      const read = reads[i]!;
      const first = read.entries.find((entry) => replayed.has(entry));
      this.positions.set(source, { epoch: read.epoch, seq: first ? first.seq - 1 : read.seq });
    });
    this.emitMerged(merged);
  }

  /** The histories of `lost` sources were lost (their positions are back at 0): say so, then go on with everything they keep. */
  private async restart(lost: Set<string>): Promise<void> {
    this.emit({ type: 'gap', gap: { reason: 'EPOCH_CHANGED', epoch: null, resumesAfter: 0 }, position: this.position(null) });
    await this.catchUp(this.sources, lost);
  }

  protected resync(): Promise<void> {
    return this.catchUp(this.sources);
  }

  protected receive(entry: NotificationEntry): Promise<void> | void {
    const position = this.positions.get(entry.source);
    if (!position) return;
    if (!adopts(position, entry.epoch)) return this.catchUp([entry.source]);
    if (entry.seq <= position.seq) return;
    if (entry.seq === position.seq + 1) return this.accept(entry);
    return this.catchUp([entry.source]);
  }

  /** Reads what `sources` hold after their positions; a source whose history was lost starts again from what is kept. */
  private async catchUp(sources: string[], restarted = new Set<string>()): Promise<void> {
    const reads = await this.read(sources, (source) => ({ after: this.positions.get(source)!.seq }));
    const lost = new Set<string>();
    sources.forEach((source, i) => {
      const { epoch } = reads[i]!;
      if (adopts(this.positions.get(source)!, epoch)) return;
      this.positions.set(source, { epoch, seq: 0 });
      lost.add(source);
    });
    if (lost.size > 0) return this.restart(lost);
    this.emitRead(sources, reads, restarted);
  }

  /**
   * Emits what the reads hold after each source's position, merged; when retention removed
   * entries that were not delivered yet, says so once first (not for `restarted` sources, which go
   * on with whatever they keep), and moves past them.
   */
  private emitRead(sources: string[], reads: SourceRead[], restarted = new Set<string>()): void {
    let trimmed = false;
    sources.forEach((source, i) => {
      const read = reads[i]!;
      const position = this.positions.get(source)!;
      const next = read.entries[0]?.seq ?? read.seq + 1;
      if (next > position.seq + 1) {
        position.seq = next - 1;
        trimmed ||= !restarted.has(source);
      }
    });
    if (trimmed) {
      const gap: HistoryGap = { reason: 'TRIMMED', epoch: null, resumesAfter: 0 };
      this.emit({ type: 'gap', gap, position: this.position(null) });
    }
    this.emitMerged(reads.flatMap((read) => read.entries));
  }

  private emitMerged(entries: NotificationEntry[]): void {
    for (const entry of entries.sort(compareEntries)) {
      if (this.isFull) return this.leftBehind();
      this.accept(entry);
    }
  }

  private accept(entry: NotificationEntry): void {
    const position = this.positions.get(entry.source);
    if (!position || entry.epoch !== position.epoch || entry.seq <= position.seq) return;
    position.seq = entry.seq;
    if (entry.event === 'DELETED' || entry.event === 'ARCHIVED') this.choices.removed.set(entry.notification.id, entry.event);
    if (isListed(this.choices, entry)) this.emit({ type: 'entry', entry, position: this.position(entry.source) });
  }

  private position(pivot: string | null): NotificationCursor {
    return { sources: new Map([...this.positions].map(([source, position]) => [source, { ...position }])), pivot };
  }
}

/**
 * Whether `epoch` is the history `position` is in; a position in a source that had no history yet
 * (nothing seen, nothing to lose) takes the source's first epoch.
 */
function adopts(position: SourcePosition, epoch: string): boolean {
  if (position.epoch === '' && position.seq === 0) position.epoch = epoch;
  return position.epoch === epoch;
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
