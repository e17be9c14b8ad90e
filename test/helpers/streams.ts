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
