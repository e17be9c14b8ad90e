import type { Plugin } from 'graphql-yoga';
import { clientError, ErrorCode } from '../errors.js';

/** What a request carries: the GraphQL text, or the `persistedQuery` extension naming it by hash. */
interface OperationParams {
  query?: string;
  extensions?: Record<string, unknown> | null;
}

/**
 * PERSISTED_OPERATIONS=only: the server runs only the operations of its allow-list (built by
 * `npm run persisted-operations` from src/client/operations.graphql), named by the SHA-256 of
 * their text in `extensions.persistedQuery.sha256Hash` (Apollo's convention, graphql-yoga's too).
 * Any other document is refused with BAD_USER_INPUT, on every transport. Returns the text to run.
 */
export function createPersistedOperations(allowList: Record<string, string>) {
  return function documentOf(params: OperationParams): string {
    const persisted = params.extensions?.persistedQuery as { sha256Hash?: unknown } | undefined;
    const hash = persisted?.sha256Hash;
    if (typeof hash !== 'string') {
      throw clientError(
        ErrorCode.BadUserInput,
        'only persisted operations are accepted: send extensions.persistedQuery.sha256Hash of an operation of the allow-list',
        { persistedQuery: 'required', http: { status: 400 } },
      );
    }
    const query = allowList[hash];
    if (query === undefined) {
      throw clientError(ErrorCode.BadUserInput, `no persisted operation has the hash ${hash.slice(0, 64)}`, {
        persistedQuery: 'not_found',
        http: { status: 400 },
      });
    }
    return query;
  };
}

export type PersistedOperations = ReturnType<typeof createPersistedOperations>;

/** Replaces each HTTP and SSE request's document with the allowed one its hash names. */
export function usePersistedOperations(documentOf: PersistedOperations): Plugin {
  return {
    onParams: ({ params, setParams }) => setParams({ ...params, query: documentOf(params) }),
  };
}
