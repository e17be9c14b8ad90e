import type { Cursor } from './cursor.js';
import type { UpdateHub } from './hub.js';
import type { HistoryRead, HistoryReader } from './store.js';
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

/** An entry, or a gap notice with the newest entry kept (so a notice can say where the stream stands). */
export type StreamEvent<E> = { type: 'entry'; entry: E } | { type: 'gap'; gap: HistoryGap; latest: E | null };

/** A cursor that names an update the stream has not reached yet: a client bug, not a gap. */
export class CursorAheadError extends Error {
  override name = 'CursorAheadError';
}

export interface OpenStreamOptions<E extends StreamEntry> {
  hub: UpdateHub;
  channel: string;
  read: HistoryReader<E>;
  /** Resume after this position; without one, replay the last `replay` entries. */
  after: Cursor | null;
  replay: number;
  /** Live entries after which the stream ends (terminal updates). */
  isFinal: (entry: E) => boolean;
  /** Live entries a consumer may have waiting; past it they are read from history once it catches up. */
  queueLimit: number;
  /** How long to wait before reading history again after Redis failed to answer. */
  retryMs?: number;
}

const RESYNC = Symbol('resync');

/**
 * Replay-then-live for one stream, with nothing lost or repeated. It subscribes first, then reads
 * history, then merges live entries by seq: duplicates are dropped, a seq that skips ahead (or a
 * Redis reconnect) is filled from history, and a consumer that falls behind is fed from history
 * instead of an unbounded queue.
 */
class MergedStream<E extends StreamEntry> implements AsyncIterableIterator<StreamEvent<E>> {
  private epoch: string | null = null;
  private lastSeq = 0;
  private readonly out: StreamEvent<E>[] = [];
  private readonly inbox: Array<E | typeof RESYNC> = [];
  private ready = false;
  private pumping = false;
  private lagging = false;
  private ended = false;
  private wake: (() => void) | null = null;
  private stopLive: () => void = () => undefined;
  private stopResync: () => void = () => undefined;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: OpenStreamOptions<E>) {}

  async start(): Promise<void> {
    const { hub, channel, after, replay } = this.options;
    this.stopResync = hub.onResync(() => this.push(RESYNC));
    try {
      this.stopLive = await hub.subscribe(channel, (message) => this.push(message as E));
      if (after) {
        this.epoch = after.epoch;
        this.lastSeq = after.seq;
        await this.catchUp(true);
      } else {
        const read = await this.options.read({ last: replay });
        this.epoch = read.epoch;
        for (const entry of read.entries) this.accept(entry);
        this.lastSeq = read.lastSeq;
        if (read.final) this.end();
      }
    } catch (error) {
      this.end();
      throw error;
    }
    this.ready = true;
    this.kick();
  }

  /** Reads everything after `lastSeq`, telling the consumer first when some of it is gone. */
  private async catchUp(initial: boolean): Promise<void> {
    let read: HistoryRead<E> = await this.options.read({ after: this.lastSeq });
    let reason: GapReason | null = null;
    if (read.epoch !== this.epoch && !(this.epoch === null && this.lastSeq === 0)) {
      reason = 'EPOCH_CHANGED';
      this.lastSeq = 0;
      if (read.epoch !== null) read = await this.options.read({ after: 0 });
    } else if (initial && read.lastSeq < this.lastSeq) {
      throw new CursorAheadError(`cursor is at ${this.lastSeq} but the stream is at ${read.lastSeq}`);
    }
    this.epoch = read.epoch;
    if (read.firstSeq !== null && read.firstSeq > this.lastSeq + 1) {
      reason ??= 'TRIMMED';
      this.lastSeq = read.firstSeq - 1;
    }
    if (reason) {
      const gap: HistoryGap = { reason, epoch: read.epoch, resumesAfter: this.lastSeq };
      this.emit({ type: 'gap', gap, latest: read.entries.at(-1) ?? null });
    }
    for (const entry of read.entries) this.accept(entry);
    if (read.final && this.lastSeq >= read.lastSeq) this.end();
  }

  private accept(entry: E): void {
    if (this.ended || entry.seq <= this.lastSeq) return;
    this.lastSeq = entry.seq;
    this.emit({ type: 'entry', entry });
    if (this.options.isFinal(entry)) this.end();
  }

  private emit(event: StreamEvent<E>): void {
    this.out.push(event);
    this.wakeConsumer();
  }

  private push(item: E | typeof RESYNC): void {
    if (this.ended) return;
    this.inbox.push(item);
    this.kick();
  }

  private kick(): void {
    if (this.ready && !this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && !this.ended) {
        const item = this.inbox.shift()!;
        if (item === RESYNC) {
          await this.catchUp(false);
        } else if (this.out.length >= this.options.queueLimit || this.lagging) {
          this.lagging = true;
        } else if (item.epoch !== this.epoch || item.seq > this.lastSeq + 1) {
          await this.catchUp(false);
        } else {
          this.accept(item);
        }
      }
    } catch {
      this.scheduleRetry();
    } finally {
      this.pumping = false;
    }
  }

  /** Redis did not answer: try again shortly; history still has what was missed. */
  private scheduleRetry(): void {
    if (this.ended || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.inbox.length = 0;
      this.push(RESYNC);
    }, this.options.retryMs ?? 250);
  }

  private wakeConsumer(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.inbox.length = 0;
    this.stopLive();
    this.stopResync();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wakeConsumer();
  }

  async next(): Promise<IteratorResult<StreamEvent<E>, undefined>> {
    for (;;) {
      const event = this.out.shift();
      if (event) {
        if (this.lagging && this.out.length <= this.options.queueLimit / 2) {
          this.lagging = false;
          this.push(RESYNC);
        }
        return { value: event, done: false };
      }
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<StreamEvent<E>, undefined>> {
    this.out.length = 0;
    this.end();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * Opens a stream; resolves once the live subscription is confirmed and the first history read is
 * queued, so errors such as a cursor from the future reject here, before anything is sent.
 */
export async function openStream<E extends StreamEntry>(
  options: OpenStreamOptions<E>,
): Promise<AsyncIterableIterator<StreamEvent<E>>> {
  const stream = new MergedStream(options);
  await stream.start();
  return stream;
}
