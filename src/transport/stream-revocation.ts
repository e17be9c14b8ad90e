import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { revokes, type RevocationList } from '../auth/revocations.js';
import type { Viewer } from '../auth/token.js';
import { clientError, ErrorCode } from '../errors.js';
import type { Context } from '../schema/builder.js';
import { isAsyncIterable } from './async-iterable.js';

type Results = AsyncIterable<ExecutionResult>;


/** `source`, until `viewer` is revoked: then one UNAUTHENTICATED result, and the end. */
function untilRevoked(source: Results, viewer: Viewer, revocations: RevocationList): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let revoke = () => {};
  const revoked = new Promise<null>((resolve) => (revoke = () => resolve(null)));
  let isRevoked = false;
  let ended = false;
  const stopListening = revocations.onRevoked((userId, at) => {
    if (ended || isRevoked || userId !== viewer.id || !revokes(at, viewer)) return 0;
    isRevoked = true;
    revoke();
    return 1;
  });
  const end = async (): Promise<IteratorResult<ExecutionResult, undefined>> => {
    ended = true;
    stopListening();
    await iterator.return?.();
    return { value: undefined, done: true };
  };
  return {
    async next() {
      if (ended) return { value: undefined, done: true };
      const step = await Promise.race([iterator.next(), revoked]);
      if (step === null) {
        await end();
        return { value: { errors: [clientError(ErrorCode.Unauthenticated, 'access revoked: sign in again')] }, done: false };
      }
      if (step.done) await end();
      return step;
    },
    return: end,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Ends a revoked user's SSE subscriptions with an UNAUTHENTICATED result, as a revocation closes
 * their WebSockets. WebSocket operations are left alone: closing the socket ends them.
 */
export function useStreamRevocation(revocations: RevocationList): Plugin<Context> {
  return {
    onSubscribe({ args }) {
      const { viewer, connection } = args.contextValue;
      if (connection) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (isAsyncIterable<ExecutionResult>(result)) setResult(untilRevoked(result, viewer, revocations));
        },
      };
    },
  };
}
