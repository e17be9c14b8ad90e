import { print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Client } from 'graphql-ws';

/** Everything one subscription delivered, and how it ended. */
export interface Collected<T> {
  items: T[];
  errors: unknown[];
  completed: boolean;
}

interface Subscriber {
  subscribe(
    payload: { query: string; variables?: Record<string, unknown> },
    sink: {
      next(value: ExecutionResult<Record<string, unknown>, unknown>): void;
      error(error: unknown): void;
      complete(): void;
    },
  ): () => void;
}

/**
 * Subscribes and collects results until the stream completes, `until` says stop, or the timeout
 * passes (then it rejects with what it got, so a failing test says what was missing).
 */
export function collect<T>(
  client: Client | Subscriber,
  query: string | DocumentNode,
  variables: object,
  options: { field: string; until?: (items: T[]) => boolean; timeoutMs?: number },
): Promise<Collected<T>> {
  const result: Collected<T> = { items: [], errors: [], completed: false };
  return new Promise((resolve, reject) => {
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${result.items.length} items: ${JSON.stringify(result).slice(0, 2000)}`));
    }, options.timeoutMs ?? 20_000);
    const finish = () => {
      clearTimeout(timer);
      resolve(result);
    };
    unsubscribe = client.subscribe(
      { query: typeof query === 'string' ? query : print(query), variables: variables as Record<string, unknown> },
      {
        next(value) {
          if (value.errors) result.errors.push(...value.errors);
          const item = value.data?.[options.field] as T | undefined;
          if (item !== undefined && item !== null) result.items.push(item);
          if (options.until?.(result.items)) {
            unsubscribe();
            finish();
          }
        },
        error(error) {
          result.errors.push(error);
          finish();
        },
        complete() {
          result.completed = true;
          finish();
        },
      },
    );
  });
}

/** Polls until `check` holds, failing after `timeoutMs`: for state that settles asynchronously. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every `extensions.code` in whatever a transport reported: GraphQL errors, arrays of them, or bodies. */
export function errorCodes(errors: unknown): string[] {
  if (Array.isArray(errors)) return errors.flatMap(errorCodes);
  if (errors && typeof errors === 'object') {
    const value = errors as { extensions?: { code?: unknown }; errors?: unknown };
    if (value.errors) return errorCodes(value.errors);
    if (typeof value.extensions?.code === 'string') return [value.extensions.code];
  }
  return [];
}

/** One event of a `text/event-stream` response, as an EventSource would dispatch it; `retry` set on the events after a hint. */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  retry: number | undefined;
}

/** A raw SSE response read event by event (fetch, no client library): what an EventSource would see. */
export interface EventStreamReader {
  status: number;
  events: SseEvent[];
  /** Resolves once `count` events of type `next` have come (or the stream ended), rejecting after `timeoutMs`. */
  nextEvents(count: number, timeoutMs?: number): Promise<SseEvent[]>;
  close(): void;
}

/** GETs `url` asking for an event stream and parses its frames as they arrive. */
export async function readEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStreamReader> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  let ended = false;
  let retry: number | undefined;
  let changed = () => {};
  void (async () => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const fields = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        const field = (name: string) =>
          fields
            .find((line) => line.startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trimStart();
        const hint = field('retry');
        if (hint !== undefined) retry = Number(hint);
        const data = field('data');
        if (data !== undefined) events.push({ id: field('id'), event: field('event') ?? 'message', data, retry });
      }
      changed();
    }
  })()
    .catch(() => undefined)
    .finally(() => {
      ended = true;
      changed();
    });
  const nexts = () => events.filter((event) => event.event === 'next');
  return {
    status: response.status,
    events,
    nextEvents(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${nexts().length} of ${count} events: ${JSON.stringify(events)}`)),
          timeoutMs,
        );
        changed = () => {
          if (nexts().length < count && !ended) return;
          clearTimeout(timer);
          resolve(nexts());
        };
        changed();
      });
    },
    close: () => abort.abort(),
  };
}
