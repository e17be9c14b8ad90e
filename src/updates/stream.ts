import type { BodyPrefix, BodyRange } from './body.js';
import type { Cursor } from './cursor.js';
import type { EventStream } from './event-stream.js';
import type { UpdateHub } from './hub.js';
import type { HistoryRead, HistoryReader } from './store.js';
import { LiveStream, type LiveStreamLimits } from './live-stream.js';
import type { StreamEntry } from './types.js';

/** Why a subscriber cannot get every update after its cursor. */
export type GapReason = 'TRIMMED' | 'EPOCH_CHANGED';

/** Told in-band, before anything else, when updates after the client's cursor are gone. */
export interface HistoryGap {
  reason: GapReason;
  /** The epoch the stream goes on in (null while its history is empty). */
  epoch: string | null;
  /** The stream goes on with the updates after this seq. */
  resumesAfter: number;
}

/**
 * An entry (with the text of its body range, when it has one and the stream follows its body), or
 * a gap notice with the newest entry kept (so a notice can say where the stream stands).
 */
export type StreamEvent<E> =
  { type: 'entry'; entry: E; body: string | null } | { type: 'gap'; gap: HistoryGap; latest: E | null };

/**
 * How a stream follows the body its entries build (see append.lua): each entry's range, and the
 * piece it appended, so that a live entry extends the body without reading Redis.
 */
export interface BodyOfEntries<E> {
  range(entry: E): BodyRange | undefined;
  piece(entry: E): string;
}

/** The body as of the stream's last seq: byte offsets and the text of the current body. */
interface BodyState {
  start: number;
  end: number;
  text: string;
}

/**
 * One event object per entry, shared by every stream that delivers it: what a subscriber computes
 * from an event (its GraphQL result, its JSON) can then serve every other subscriber too. It is
 * kept on the entry under a symbol (invisible to JSON) rather than in a WeakMap: an ephemeron per
 * update costs the garbage collector more than it saves.
 */
const EVENT = Symbol('event');
type Carrier<E> = E & { [EVENT]?: StreamEvent<E> };

/** On the shared event of a live entry only: when its producer appended it (ms since the epoch). */
const APPENDED_AT = Symbol('appendedAt');
type LiveEvent = { [APPENDED_AT]?: number };

/**
 * When the producer appended the update a live event carries (ms since the epoch), for delivery
 * latency; undefined for replays from history (not deliveries to time), gap notices and streams
 * without timestamps, NaN when a producer's timestamp does not parse.
 */
export function liveAppendedAt(event: unknown): number | undefined {
  return typeof event === 'object' && event !== null ? (event as LiveEvent)[APPENDED_AT] : undefined;
}

/** Entries per history read: a long catch-up is read (and handed to the consumer) a page at a time. */
const HISTORY_PAGE = 100;

/** A cursor that names an update the stream has not reached yet: a client bug, not a gap. */
export class CursorAheadError extends Error {
  override name = 'CursorAheadError';
}

export interface OpenStreamOptions<E extends StreamEntry> extends LiveStreamLimits {
  hub: UpdateHub;
  channel: string;
  read: HistoryReader<E>;
  /** Resume after this position; without one, replay the last `replay` entries. */
  after: Cursor | null;
  replay: number;
  /** Live entries after which the stream ends (terminal updates). */
  isFinal: (entry: E) => boolean;
  /** When the producer appended an entry (ISO 8601), carried by its live event (see liveAppendedAt). */
  appendedAt?: (entry: E) => string;
  /** Given for streams whose entries build a body: each entry event then carries its text. */
  body?: BodyOfEntries<E>;
}

/**
 * Replay-then-live for one stream, with nothing lost or repeated. It subscribes first, then reads
 * history, then merges live entries by seq: duplicates are dropped, a seq that skips ahead (or a
 * Redis reconnect) is filled from history, and a consumer that falls behind is fed from history
 * instead of an unbounded queue.
 */
class MergedStream<E extends StreamEntry> extends LiveStream<E, StreamEvent<E>> {
  private epoch: string | null = null;
  private lastSeq = 0;
  /** Null while unknown: a live entry with a body range is then read from history instead. */
  private body: BodyState | null = null;

  constructor(private readonly options: OpenStreamOptions<E>) {
    super(options.hub, options);
  }

  protected async open(): Promise<void> {
    const { after, replay } = this.options;
    if (after) {
      this.options.hub.meter.resumed += 1;
      this.epoch = after.epoch;
      this.lastSeq = after.seq;
      await this.catchUp(true);
      return;
    }
    const read = await this.options.read({ last: replay });
    this.epoch = read.epoch;
    if (this.acceptAll(read.entries, read.body)) this.lastSeq = read.lastSeq;
    if (read.final && this.lastSeq >= read.lastSeq) this.end();
  }

  protected resync(): Promise<void> {
    return this.catchUp(false);
  }

  /** No history yet, nothing delivered: the first epoch the stream meets is its own, with no gap. */
  private get sawNothing(): boolean {
    return this.epoch === null && this.lastSeq === 0;
  }

  protected receive(entry: E): Promise<void> | void {
    // Seq 1 of a first history is taken as it comes: nothing can precede it. Read instead, every
    // subscriber of a resource with no history would read it at once.
    if (this.sawNothing && entry.seq === 1) this.epoch = entry.epoch;
    if (entry.epoch !== this.epoch || entry.seq > this.lastSeq + 1) return this.catchUp(false);
    if (entry.seq <= this.lastSeq) return;
    const range = this.options.body?.range(entry);
    if (range && !this.extendBody(entry, range)) return this.catchUp(false);
    this.accept(entry, true, range ? this.body!.text : null);
  }

  /**
   * Follows a live entry's body range from the body as of the seq before it: the same body with
   * the entry's piece appended, or a new body made of the piece. False when it does not add up
   * (the body is unknown, or missed a piece): history is read instead.
   */
  private extendBody(entry: E, range: BodyRange): boolean {
    const [start, end] = range;
    const shared = (entry as Carrier<E>)[EVENT];
    let text: string;
    if (shared?.type === 'entry' && shared.body !== null) text = shared.body;
    else {
      const body = this.body;
      if (!body) return false;
      const piece = this.options.body!.piece(entry);
      const bytes = Buffer.byteLength(piece);
      if (start === body.start && end === body.end + bytes) text = body.text + piece;
      else if (start === body.end && end === start + bytes) text = piece;
      else return false;
    }
    this.setBody(start, end, text);
    return true;
  }

  /** Kept in one object per stream, changed in place: a live token allocates no state. */
  private setBody(start: number, end: number, text: string): void {
    if (!this.body) this.body = { start, end, text };
    else {
      this.body.start = start;
      this.body.end = end;
      this.body.text = text;
    }
  }

  /**
   * Reads everything after `lastSeq`, a page at a time, telling the consumer first when some of
   * it is gone; stops early (to go on later) when the consumer is full.
   */
  private async catchUp(initial: boolean): Promise<void> {
    let read: HistoryRead<E> = await this.options.read({ after: this.lastSeq, limit: HISTORY_PAGE });
    let reason: GapReason | null = null;
    if (read.epoch !== this.epoch && !this.sawNothing) {
      reason = 'EPOCH_CHANGED';
      this.lastSeq = 0;
      if (read.epoch !== null) read = await this.options.read({ after: 0, limit: HISTORY_PAGE });
    } else if (initial && read.lastSeq < this.lastSeq) {
      throw new CursorAheadError(`cursor is at ${this.lastSeq} but the stream is at ${read.lastSeq}`);
    }
    this.epoch = read.epoch;
    if (read.firstSeq !== null && read.firstSeq > this.lastSeq + 1) {
      reason ??= 'TRIMMED';
      this.lastSeq = read.firstSeq - 1;
    }
    if (reason) {
      this.body = null;
      const gap: HistoryGap = { reason, epoch: read.epoch, resumesAfter: this.lastSeq };
      this.options.hub.meter.gaps += 1;
      this.emit({ type: 'gap', gap, latest: read.entries.at(-1) ?? null });
    }
    if (!this.acceptAll(read.entries, read.body)) return;
    if (read.final && this.lastSeq >= read.lastSeq) this.end();
    else if (read.entries.length === HISTORY_PAGE && this.lastSeq < read.lastSeq) await this.catchUp(false);
  }

  /**
   * Accepts entries until the consumer is full; false when some were left for a later catch-up.
   * `body` is what the read saw of the stream's body: each entry's text is a slice of it.
   */
  private acceptAll(entries: E[], body: BodyPrefix | null): boolean {
    const ranges = body ? this.options.body : undefined;
    if (ranges && body?.totalBytes === 0) this.setBody(0, 0, '');
    for (const entry of entries) {
      if (this.isEnded) return false;
      if (this.isFull) {
        this.leftBehind();
        return false;
      }
      const range = ranges?.range(entry);
      let text: string | null = null;
      if (range && body && entry.seq > this.lastSeq) {
        text = body.slice(range);
        this.setBody(range[0], range[1], text);
      }
      this.accept(entry, false, text);
    }
    return true;
  }

  /**
   * Hands an entry on as the event every subscriber of this process shares. A live entry is one
   * object for all of them (the hub parses a message once), so whoever creates its event first
   * stamps it with its append time, once.
   */
  private accept(entry: E, live: boolean, body: string | null): void {
    if (this.isEnded || entry.seq <= this.lastSeq) return;
    this.lastSeq = entry.seq;
    const carrier = entry as Carrier<E>;
    let event = carrier[EVENT];
    if (!event) {
      carrier[EVENT] = event = { type: 'entry', entry, body };
      const { appendedAt } = this.options;
      if (live && appendedAt) (event as LiveEvent)[APPENDED_AT] = Date.parse(appendedAt(entry));
    }
    this.emit(event);
    if (live) this.options.hub.meter.live += 1;
    else this.options.hub.meter.replayed += 1;
    if (this.options.isFinal(entry)) this.end();
  }
}

/**
 * Opens a stream; resolves once the live subscription is confirmed and the first history read is
 * queued, so errors such as a cursor from the future reject here, before anything is sent.
 */
export async function openStream<E extends StreamEntry>(options: OpenStreamOptions<E>): Promise<EventStream<StreamEvent<E>>> {
  const stream = new MergedStream(options);
  await stream.start([options.channel]);
  return stream;
}
