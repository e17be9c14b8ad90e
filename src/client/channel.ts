/** What a subscription pushes and its caller pulls with `for await`. */
export interface Channel<T> extends AsyncIterableIterator<T> {
  push(item: T): void;
  /** Ends the iteration once the queued items are read: quietly, or by throwing `error`. */
  end(error?: Error): void;
}

/**
 * A push-to-pull queue. Unlike an async generator, its `return()` (a `break` out of `for await`)
 * takes effect at once even while the caller waits for the next item, and calls `onReturn` so the
 * source stops.
 */
export function createChannel<T>(onReturn: () => void): Channel<T> {
  const queue: T[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake = () => {};
  const done = (): IteratorResult<T> => ({ done: true, value: undefined });
  const channel: Channel<T> = {
    push(item) {
      if (ended) return;
      queue.push(item);
      wake();
    },
    end(error) {
      if (ended) return;
      ended = true;
      failure = error;
      wake();
    },
    async next() {
      while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
      if (queue.length > 0) return { done: false, value: queue.shift() as T };
      const error = failure;
      failure = undefined;
      if (error) throw error;
      return done();
    },
    async return() {
      queue.length = 0;
      channel.end();
      onReturn();
      return done();
    },
    [Symbol.asyncIterator]() {
      return channel;
    },
  };
  return channel;
}
