import { GraphQLError } from 'graphql';

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
 * WebSocket close codes Herald uses beyond graphql-ws's own. graphql-ws clients retry 4403 (a
 * retry with the revoked token then gets 4401) and give up on 4401 and 4429.
 */
export const CloseCode = {
  /** No, bad or expired token: sign in again, then resume. */
  Unauthorized: 4401,
  /** An admin revoked the user's access (`revokeUser`): their tokens issued until then no longer work. */
  Revoked: 4403,
  /**
   * The user already has MAX_CONNECTIONS_PER_USER connections open over every instance. graphql-ws
   * uses the same number for a repeated connection_init; the reason tells the two apart.
   */
  TooManyConnections: 4429,
  /**
   * The client stopped reading: more than WS_MAX_BUFFERED_BYTES waited unsent for it for
   * WS_SLOW_CONSUMER_MS. graphql-ws clients retry it; resuming from the last cursor loses nothing.
   */
  SlowConsumer: 4413,
  /** A message over the size limit (the larger of MAX_UPLOAD_BYTES and MAX_CONTENT_BYTES, plus 64 KiB); sent by ws itself. */
  MessageTooBig: 1009,
} as const;
