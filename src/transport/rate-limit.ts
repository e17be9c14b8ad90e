import {
  getOperationAST,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type GraphQLError,
  type OperationDefinitionNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { rateLimitedError } from '../errors.js';
import type { RateLimiter } from '../rate-limiter.js';
import type { Context } from '../schema/builder.js';

/** Root fields a rate limit does not count: refreshing a token must work even for a user at the limit. */
const UNMETERED_FIELDS = new Set(['refreshToken']);

function isMetered(operation: OperationDefinitionNode): boolean {
  return operation.selectionSet.selections.some(
    (selection) => selection.kind !== Kind.FIELD || !UNMETERED_FIELDS.has(selection.name.value),
  );
}

/**
 * Counts each mutation against its viewer's limit before it runs; over the limit the operation
 * fails with RATE_LIMITED (HTTP 429) and runs nothing. Part of the envelop, so it applies to HTTP
 * and WebSocket alike, and only to the user who is over. The result it sets skips the masking
 * later plugins would do, so `maskError` shapes (and counts) its error here.
 */
export function useMutationRateLimit(
  limiter: RateLimiter,
  onLimited: () => void,
  maskError: (error: GraphQLError) => GraphQLError,
): Plugin<Context> {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      // envelop types its arguments loosely (any): these are what graphql-js' execute receives.
      const operation = getOperationAST(args.document as DocumentNode, args.operationName as string | null | undefined);
      if (operation?.operation !== OperationTypeNode.MUTATION || !isMetered(operation)) return;
      const waitMs = await limiter.hit(args.contextValue.viewer.id);
      if (waitMs === 0) return;
      onLimited();
      setResultAndStopExecution({ errors: [maskError(rateLimitedError('mutations', 'mutations_per_minute', waitMs))] });
    },
  };
}
