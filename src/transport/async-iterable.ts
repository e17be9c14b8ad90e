/** True for a stream of results, as opposed to a single result: how GraphQL executors tell the two apart. */
export function isAsyncIterable<T>(value: unknown): value is AsyncIterable<T> {
  return typeof (value as Partial<AsyncIterable<T>> | null)?.[Symbol.asyncIterator] === 'function';
}
