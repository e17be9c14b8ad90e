import type { ChannelListener, ResyncListener } from '../redis.js';
import type { EventStream, Sink } from './event-stream.js';
import type { UpdateHub } from './hub.js';

const RESYNC = Symbol('resync');

let openStreams = 0;

/** Streams started and not yet ended in this process: back to zero once every subscription is over. */
export function openLiveStreams(): number {
  return openStreams;
}

export interface LiveStreamLimits {
  /** Items an iterating consumer may have waiting; past it the stream stops and catches up from history later. */
  queueLimit: number;
  /** How long to wait before reading history again after Redis failed to answer; default 250 ms. */
  retryMs?: number;
}

/**
 * The part every lossless subscription shares, whatever its history looks like: subscribe to the
 * channels first (confirmed by Redis), then read history, then handle live messages one at a time.
 * A Redis reconnect or a failed read leads to a resync. Subclasses say how to open, how to catch
 * up and what to do with one live message; a live message that needs no Redis read is handled
 * synchronously, all the way to a piped consumer.
 *
 * A consumer that cannot keep up never makes the stream hold more for it: once it is full (a
 * piped sink said stop, or an iterating consumer has `queueLimit` items waiting) live messages are
 * dropped and history reads stop early, and when it can take more again the stream catches up
 * from history. Memory per subscriber stays bounded whatever is published.
 */
export abstract class LiveStream<M, V> implements EventStream<V>, ChannelListener, ResyncListener {
  private readonly out: V[] = [];
  private sink: Sink<V> | null = null;
  private readonly inbox: Array<M | typeof RESYNC> = [];
  private ready = false;
  private pumping = false;
  /** The piped sink said stop. */
  private paused = false;
  /** Something was left unread because the consumer was full: catch up once it is not. */
  private behind = false;
  private ended = false;
  private wake: (() => void) | null = null;
  /** What it listens to in the hub: the stream itself is the listener, so it leaves them by name. */
  private listening: readonly string[] = [];
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(
    protected readonly hub: UpdateHub,
    private readonly limits: LiveStreamLimits,
  ) {
    openStreams += 1;
  }

  /** The first history read; runs after every channel is subscribed, so nothing falls in between. */
  protected abstract open(): Promise<void>;
  /** Reads whatever may have been missed: after a reconnect, a failed read or a full consumer. */
  protected abstract resync(): Promise<void>;
  /** One live message, in the order Redis delivered it; a promise only when it must read Redis. */
  protected abstract receive(message: M): Promise<void> | void;

  /** Resolves once every channel is confirmed and the first read is queued; rejects (and cleans up) otherwise. */
  async start(channels: string[]): Promise<void> {
    this.listening = channels;
    this.hub.onResync(this, channels);
    try {
      const subscribed = await Promise.allSettled(channels.map((channel) => this.hub.subscribe(channel, this)));
      const failed = subscribed.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      await this.open();
    } catch (error) {
      this.end();
      throw error;
    }
    this.ready = true;
    this.kick();
  }

  protected get isEnded(): boolean {
    return this.ended;
  }

  /**
   * True while the consumer can take nothing more. A subclass emitting from a history read stops
   * there and calls {@link leftBehind}; the rest is read again once the consumer has room.
   */
  protected get isFull(): boolean {
    return this.sink ? this.paused : this.out.length >= this.limits.queueLimit;
  }

  protected leftBehind(): void {
    this.behind = true;
  }

  protected emit(value: V): void {
    if (this.sink) {
      if (!this.sink.next(value)) this.paused = true;
      return;
    }
    this.out.push(value);
    this.wakeConsumer();
  }

  pipe(sink: Sink<V>): void {
    this.sink = sink;
    for (const value of this.out.splice(0)) this.emit(value);
    if (this.ended) sink.end();
    else this.catchUpIfBehind();
  }

  resume(): void {
    this.paused = false;
    this.catchUpIfBehind();
  }

  protected end(): void {
    if (this.ended) return;
    this.ended = true;
    openStreams -= 1;
    this.inbox.length = 0;
    this.hub.offResync(this);
    for (const channel of this.listening) this.hub.unsubscribe(channel, this);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wakeConsumer();
    this.sink?.end();
  }

  /** A message of one of its channels, from the hub. */
  onMessage(message: unknown): void {
    this.push(message as M);
  }

  /** From the hub: messages may have been missed; read history. */
  onResync(): void {
    this.push(RESYNC);
  }

  private push(item: M | typeof RESYNC): void {
    if (this.ended) return;
    this.inbox.push(item);
    this.kick();
  }

  private kick(): void {
    if (!this.ready || this.pumping) return;
    while (this.inbox.length > 0 && !this.ended) {
      const pending = this.handle(this.inbox.shift()!);
      if (pending) {
        this.pumping = true;
        pending.then(
          () => {
            this.pumping = false;
            this.kick();
          },
          () => {
            this.pumping = false;
            this.scheduleRetry();
          },
        );
        return;
      }
    }
  }

  /** One inbox item; a promise when it reads Redis (a resync, or a live message that skips ahead). */
  private handle(item: M | typeof RESYNC): Promise<void> | void {
    if (item === RESYNC) return this.resync();
    if (this.behind || this.isFull) return this.leftBehind();
    return this.receive(item);
  }

  private catchUpIfBehind(): void {
    if (!this.behind || this.isFull || this.ended) return;
    this.behind = false;
    this.push(RESYNC);
  }

  /** Redis did not answer: try again shortly; history still has what was missed. */
  private scheduleRetry(): void {
    if (this.ended || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.inbox.length = 0;
      this.push(RESYNC);
    }, this.limits.retryMs ?? 250);
  }

  private wakeConsumer(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async next(): Promise<IteratorResult<V, undefined>> {
    for (;;) {
      const value = this.out.shift();
      if (value !== undefined) {
        if (this.out.length <= this.limits.queueLimit / 2) this.catchUpIfBehind();
        return { value, done: false };
      }
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<V, undefined>> {
    this.out.length = 0;
    this.end();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
