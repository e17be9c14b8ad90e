import { GraphQLError } from 'graphql';
import { CloseCode as ProtocolCloseCode } from 'graphql-ws/client';

/** The error codes of the contract, carried in `extensions.code`. */
export const ErrorCode = {
  BadUserInput: 'BAD_USER_INPUT',
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  NotFound: 'NOT_FOUND',
  RateLimited: 'RATE_LIMITED',
  Internal: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const httpStatus: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.RateLimited]: 429,
};

/** An expected failure a client can act on; Yoga shows it unmasked. */
export function clientError(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  const status = httpStatus[code];
  return new GraphQLError(message, {
    extensions: { code, ...extra, ...(status ? { http: { status } } : {}) },
  });
}

/**
 * A RATE_LIMITED error for `waitMs` left in a window, naming the `limit` (as `extensions.limit`)
 * and when to retry (`extensions.retryAfterSeconds`), so every limit reads the same to a client.
 */
export function rateLimitedError(what: string, limit: string, waitMs: number): GraphQLError {
  const retryAfterSeconds = Math.ceil(waitMs / 1000);
  return clientError(ErrorCode.RateLimited, `too many ${what}: try again in ${retryAfterSeconds} s`, {
    limit,
    retryAfterSeconds,
  });
}

/**
 * Every WebSocket close code Herald sends, in one place: RFC 6455's, graphql-ws's protocol codes
 * (taken from its enum, so they cannot drift from what graphql-ws clients expect) and Herald's
 * own. graphql-ws clients retry 1001, 4403 (a retry with the revoked token then gets 4401), 4408
 * and 4413, and give up on the rest (`herald/client` also retries 4429 and 4500, and 4401 with a fresh token).
 * The values are plain numbers, not graphql-ws's enum, so the code of a close event compares with them.
 */
export const CloseCode = {
  /** The server is stopping (a deploy): reconnect, to another instance, and resume. */
  GoingAway: 1001,
  /** A message over the size limit (MAX_UPLOAD_BYTES plus room for the document); the reason names the limit. */
  MessageTooBig: 1009,
  InternalServerError: ProtocolCloseCode.InternalServerError as number,
  /** A message that is not one of graphql-ws's, or not JSON. */
  BadRequest: ProtocolCloseCode.BadRequest as number,
  /** No, bad or expired token (also graphql-ws's code for a subscribe before connection_ack): sign in again, then resume. */
  Unauthorized: ProtocolCloseCode.Unauthorized as number,
  /** An admin revoked the user's access (`revokeUser`): their tokens issued until then no longer work. */
  Revoked: ProtocolCloseCode.Forbidden as number,
  SubprotocolNotAcceptable: ProtocolCloseCode.SubprotocolNotAcceptable as number,
  ConnectionInitialisationTimeout: ProtocolCloseCode.ConnectionInitialisationTimeout as number,
  SubscriberAlreadyExists: ProtocolCloseCode.SubscriberAlreadyExists as number,
  TooManyInitialisationRequests: ProtocolCloseCode.TooManyInitialisationRequests as number,
  /**
   * The user already has MAX_CONNECTIONS_PER_USER connections open over every instance, or the
   * address MAX_CONNECTIONS_PER_IP on this one. graphql-ws uses the same number for a repeated
   * connection_init; the reason tells them apart.
   */
  TooManyConnections: ProtocolCloseCode.TooManyInitialisationRequests as number,
  /** This instance holds MAX_CONNECTIONS WebSockets: try again (graphql-ws clients retry it, so a load balancer can send them elsewhere). */
  TryAgainLater: 1013,
  /** The connection had no subscription for WS_IDLE_TIMEOUT_MS; graphql-ws uses the same number for a missing connection_init. */
  Idle: ProtocolCloseCode.ConnectionInitialisationTimeout as number,
  /**
   * The client stopped reading: more than WS_MAX_BUFFERED_BYTES waited unsent for it for
   * WS_SLOW_CONSUMER_MS. graphql-ws clients retry it; resuming from the last cursor loses nothing.
   */
  SlowConsumer: 4413,
} as const;
