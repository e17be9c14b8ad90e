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
 * `onEnd` is called once when the stream is over, however it ended.
 */
export function mapStream<A, B>(
  source: EventStream<A>,
  map: (event: A) => B | Promise<B> | undefined,
  onEnd: () => void = () => {},
): EventStream<B> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  return {
    async next() {
      for (;;) {
        const step = await source.next();
        if (step.done) {
          end();
          return DONE;
        }
        const value = await map(step.value);
        if (value !== undefined) return { value, done: false };
      }
    },
    pipe(sink) {
      let pending: Promise<void> | null = null;
      let failed = false;
      const deliver = (value: B | undefined): boolean => value === undefined || failed || sink.next(value);
      const fail = (error: unknown) => {
        if (failed) return;
        failed = true;
        void source.return();
        end();
        sink.fail(error);
      };
      const finish = () => {
        if (failed) return;
        end();
        sink.end();
      };
      source.pipe({
        next(event) {
          let value: B | Promise<B> | undefined;
          try {
            value = map(event);
          } catch (error) {
            fail(error);
            return false;
          }
          if (!pending && !isPromise<B>(value)) return deliver(value);
          const settled: Promise<void> = (pending ?? Promise.resolve()).then(() => value).then((mapped) => void deliver(mapped), fail);
          pending = settled;
          void settled.then(() => {
            if (pending === settled) pending = null;
          });
          return true;
        },
        end() {
          if (pending) void pending.then(finish);
          else finish();
        },
        fail,
      });
    },
    resume() {
      source.resume();
    },
    async return() {
      await source.return();
      end();
      return DONE;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
