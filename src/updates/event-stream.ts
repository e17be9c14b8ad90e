/** Where a piped stream delivers: called synchronously, in order, and nothing after `end` or `fail`. */
export interface Sink<V> {
  /**
   * Takes one value; false when it can take no more for now. The stream then stops delivering
   * (it will catch up from history, nothing is lost) until `resume()` is called.
   */
  next(value: V): boolean;
  end(): void;
  /** The stream broke (a mapped value failed); it is stopped. */
  fail(error: unknown): void;
}

/**
 * A subscription's events, which a consumer either iterates (pull: SSE through Yoga) or pipes
 * (push: the WebSocket transport, which writes each event as it comes, with no promise per
 * event per subscriber). `return()` stops it either way.
 */
export interface EventStream<V> extends AsyncIterableIterator<V, undefined> {
  /** Delivers everything from now on to `sink` instead of to `next()`; call once. */
  pipe(sink: Sink<V>): void;
  /** The piped sink can take more again (after its `next` said no). */
  resume(): void;
  /** Stops the stream and lets go of its Redis subscriptions. */
  return(): Promise<IteratorResult<V, undefined>>;
}

export function isEventStream(value: unknown): value is EventStream<unknown> {
  return typeof (value as Partial<EventStream<unknown>> | null)?.pipe === 'function';
}

function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof (value as Partial<Promise<T>> | null)?.then === 'function';
}

const DONE = { value: undefined, done: true } as const;

/**
 * `source` with each event turned into `map(event)`; events mapped to undefined are skipped.
 * A map that returns a promise keeps its place: piped values still arrive in the source's order.
 * A server holds one per subscription, so state lives in fields and behaviour on the prototype
 * (no closures per subscriber): a subclass keeps what its `map` needs in fields of its own.
 */
export abstract class MappedStream<A, B> implements EventStream<B> {
  private over = false;

  constructor(private readonly source: EventStream<A>) {}

  /** One event's value: undefined to skip the event, a promise to wait for it in order. */
  abstract map(event: A): B | Promise<B> | undefined;

  /** Called once when the stream is over, however it ended. */
  protected onEnd(): void {}

  /** Marks the stream over, calling `onEnd` the first time. */
  finish(): void {
    if (this.over) return;
    this.over = true;
    this.onEnd();
  }

  async next(): Promise<IteratorResult<B, undefined>> {
    for (;;) {
      const step = await this.source.next();
      if (step.done) {
        this.finish();
        return DONE;
      }
      const value = await this.map(step.value);
      if (value !== undefined) return { value, done: false };
    }
  }

  pipe(sink: Sink<B>): void {
    this.source.pipe(new MappedSink(this, sink));
  }

  resume(): void {
    this.source.resume();
  }

  async return(): Promise<IteratorResult<B, undefined>> {
    await this.source.return();
    this.finish();
    return DONE;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** What a piped MappedStream hands its source: maps each event and passes it on to `sink`. */
class MappedSink<A, B> implements Sink<A> {
  /** The last mapped value still being waited for: later ones wait behind it. */
  private pending: Promise<void> | null = null;
  private failed = false;

  constructor(
    private readonly stream: MappedStream<A, B>,
    private readonly sink: Sink<B>,
  ) {}

  next(event: A): boolean {
    let value: B | Promise<B> | undefined;
    try {
      value = this.stream.map(event);
    } catch (error) {
      this.fail(error);
      return false;
    }
    if (!this.pending && !isPromise<B>(value)) return this.deliver(value);
    const settled: Promise<void> = (this.pending ?? Promise.resolve())
      .then(() => value)
      .then(
        (mapped) => void this.deliver(mapped),
        (error: unknown) => this.fail(error),
      );
    this.pending = settled;
    void settled.then(() => {
      if (this.pending === settled) this.pending = null;
    });
    return true;
  }

  end(): void {
    if (this.pending) void this.pending.then(() => this.finish());
    else this.finish();
  }

  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    void this.stream.return();
    this.stream.finish();
    this.sink.fail(error);
  }

  private deliver(value: B | undefined): boolean {
    return value === undefined || this.failed || this.sink.next(value);
  }

  private finish(): void {
    if (this.failed) return;
    this.stream.finish();
    this.sink.end();
  }
}

/** A MappedStream whose map is a function. */
class FunctionMappedStream<A, B> extends MappedStream<A, B> {
  constructor(
    source: EventStream<A>,
    private readonly mapEvent: (event: A) => B | Promise<B> | undefined,
  ) {
    super(source);
  }

  map(event: A): B | Promise<B> | undefined {
    return this.mapEvent(event);
  }
}

/** `source` with each event turned into `map(event)` (see MappedStream). */
export function mapStream<A, B>(source: EventStream<A>, map: (event: A) => B | Promise<B> | undefined): EventStream<B> {
  return new FunctionMappedStream(source, map);
}
