import {
  getOperationAST,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type GraphQLError,
  type OperationDefinitionNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import { clientError, ErrorCode } from '../errors.js';
import { execChecked } from '../redis.js';
import type { Context } from '../schema/builder.js';

export interface RateLimiterOptions {
  keyPrefix: string;
  /** Names the counted thing in the keys, e.g. `mutations`. */
  name: string;
  /** Hits allowed per subject per window. */
  limit: number;
  windowMs: number;
}

/**
 * A fixed-window counter in Redis, shared by every instance: a subject's window starts at its first
 * hit (one key that expires with it) rather than on the clock's minute, so a burst is measured from
 * where it begins and a window's end is the same on every instance. A burst straddling two windows
 * may pass up to twice the limit within one window's length; in exchange a hit costs one round trip.
 */
export function createRateLimiter(redis: Redis, options: RateLimiterOptions) {
  return {
    /** Counts a hit; resolves with 0 when it is allowed, else the milliseconds until the window ends. */
    async hit(subject: string): Promise<number> {
      const key = `${options.keyPrefix}limits:${options.name}:${subject}`;
      const [, count, remainingMs] = (await execChecked(
        redis.multi().set(key, 0, 'PX', options.windowMs, 'NX').incr(key).pttl(key),
      )) as [unknown, number, number];
      return count > options.limit ? Math.max(remainingMs, 1) : 0;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;

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
      const retryAfterSeconds = Math.ceil(waitMs / 1000);
      setResultAndStopExecution({
        errors: [
          maskError(
            clientError(ErrorCode.RateLimited, `too many mutations: try again in ${retryAfterSeconds} s`, {
              limit: 'mutations_per_minute',
              retryAfterSeconds,
            }),
          ),
        ],
      });
    },
  };
}
