import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { revokes, type RevocationList } from '../auth/revocations.js';
import type { Viewer } from '../auth/token.js';
import { clientError, ErrorCode } from '../errors.js';
import type { Context } from '../schema/builder.js';
import { isAsyncIterable } from './async-iterable.js';

type Step = IteratorResult<ExecutionResult, undefined>;

const DONE: Step = { value: undefined, done: true };

/**
 * An SSE subscription's results until its viewer is revoked (then one UNAUTHENTICATED result, and
 * the end) or its request is aborted. A revocation interrupts the pending `next()` through a
 * resolver held for that call only: racing each call against one long-lived "revoked" promise left
 * a reaction on it per call, and each reaction held its result, so a long stream grew the server
 * by every update it delivered. The abort matters because Yoga's SSE response may never tell the
 * stream that its client has gone (a request aborted while the subscription was starting, or a
 * socket closed while nothing was being written).
 */
class SseResults implements AsyncIterableIterator<ExecutionResult, undefined> {
  private ended = false;
  private revoked = false;
  /** Settles the pending `next()` early; set only while one is pending. */
  private interrupt: ((step: Promise<Step>) => void) | null = null;
  private readonly stopListening: () => void;
  private readonly abort = () => void this.return();

  constructor(
    private readonly source: AsyncIterator<ExecutionResult>,
    viewer: Viewer,
    revocations: RevocationList,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.stopListening = revocations.onRevoked((userId, at) => {
      if (this.ended || this.revoked || userId !== viewer.id || !revokes(at, viewer)) return 0;
      this.revoked = true;
      const interrupt = this.interrupt;
      this.interrupt = null;
      interrupt?.(this.revokedStep());
      return 1;
    });
    if (signal?.aborted) this.abort();
    else signal?.addEventListener('abort', this.abort, { once: true });
  }

  next(): Promise<Step> {
    if (this.ended) return Promise.resolve(DONE);
    if (this.revoked) return this.revokedStep();
    return new Promise((resolve, reject) => {
      this.interrupt = resolve;
      this.source.next().then((step) => {
        if (this.interrupt !== resolve) return;
        this.interrupt = null;
        resolve(step.done ? this.return() : step);
      }, reject);
    });
  }

  async return(): Promise<Step> {
    if (this.ended) return DONE;
    this.ended = true;
    this.stopListening();
    this.signal?.removeEventListener('abort', this.abort);
    await this.source.return?.();
    return DONE;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async revokedStep(): Promise<Step> {
    await this.return();
    return { value: { errors: [clientError(ErrorCode.Unauthenticated, 'access revoked: sign in again')] }, done: false };
  }
}

/**
 * Ends a revoked user's SSE subscriptions with an UNAUTHENTICATED result, as a revocation closes
 * their WebSockets, and ends an SSE subscription whose request is aborted. WebSocket operations
 * are left alone: closing the socket ends them.
 */
export function useStreamRevocation(revocations: RevocationList): Plugin<Context> {
  return {
    onSubscribe({ args }) {
      const { viewer, connection, request } = args.contextValue;
      if (connection) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable<ExecutionResult>(result)) return;
          setResult(new SseResults(result[Symbol.asyncIterator](), viewer, revocations, request?.signal));
        },
      };
    },
  };
}
