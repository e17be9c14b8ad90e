import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { ServerResponse } from 'node:http';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { sendText } from '../metrics.js';

function withCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  if (error.extensions?.code) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}

/**
 * `extensions.http` tells Yoga the HTTP status to answer with; in a WebSocket message or an SSE
 * event, where the status was sent long before, it means nothing.
 */
export function withoutHttp(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
  return errors.map((error) => {
    const { http: _http, ...extensions } = error.extensions ?? {};
    return { ...error.toJSON(), extensions };
  });
}

/**
 * A GraphQL-shaped error body for an HTTP answer given outside Yoga (a body refused by size, the
 * SSE session endpoint, the publish endpoint), so clients read every refusal the same way.
 */
export function errorJson(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
  return { errors: [{ message, extensions: { code, ...extensions } }] };
}

/** Answers with errorJson's body. */
export function sendErrorJson(
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): void {
  sendText(res, status, JSON.stringify(errorJson(code, message, extensions)), 'application/json');
}

/** What a client sees of an unexpected error; the log has the rest. */
export const MASKED_ERROR_MESSAGE = 'Unexpected error.';

const CONTRACT_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * Shapes every GraphQL error sent to a client, and counts each once by its code. Two places shape
 * errors: the masker, which Yoga runs on what it sends (and the WebSocket transport on what it
 * sends itself), and the validation hook, whose errors Yoga sends unmasked. An error either of
 * them made passes the masker unchanged, so nothing is counted twice. With `details` (NODE_ENV=development,
 * Yoga's convention) an unexpected error also carries its message and stack in
 * `extensions.originalError`, for whoever debugs the client; otherwise the log alone has them.
 */
export function createErrorShaper(logger: Logger, count: (code: string) => void, details = false) {
  const shaped = new WeakSet<GraphQLError>();
  const counted = (error: GraphQLError): GraphQLError => {
    shaped.add(error);
    count(String(error.extensions.code));
    return error;
  };

  /**
   * Expected errors (GraphQLErrors: ours carry a code; the rest are argument coercion and syntax
   * errors) go to the client; anything else is logged and masked as INTERNAL_SERVER_ERROR.
   */
  function maskError(error: unknown, message = MASKED_ERROR_MESSAGE): GraphQLError {
    const graphQLError = error instanceof GraphQLError ? error : null;
    if (graphQLError && shaped.has(graphQLError)) return graphQLError;
    const original = graphQLError?.originalError;
    if (graphQLError && (!original || original instanceof GraphQLError)) {
      const source = original instanceof GraphQLError ? original : graphQLError;
      // Yoga's own request errors (BAD_REQUEST, REQUEST_ENTITY_TOO_LARGE, ...) are bad input too.
      const given = source.extensions?.code;
      const code = typeof given === 'string' && CONTRACT_CODES.has(given) ? given : ErrorCode.BadUserInput;
      return counted(
        new GraphQLError(source.message, {
          nodes: graphQLError.nodes,
          source: graphQLError.source,
          positions: graphQLError.positions,
          path: graphQLError.path,
          extensions: { ...source.extensions, code },
        }),
      );
    }
    const cause = original ?? error;
    logger.error({ err: cause, path: graphQLError?.path }, 'unexpected error');
    const originalError = cause instanceof Error ? { message: cause.message, stack: cause.stack } : { message: String(cause) };
    return counted(
      new GraphQLError(message, {
        nodes: graphQLError?.nodes,
        path: graphQLError?.path,
        extensions: { code: ErrorCode.Internal, ...(details ? { originalError } : {}) },
      }),
    );
  }

  /**
   * Gives every rejected document the contract's BAD_USER_INPUT code: syntax errors, validation
   * errors and the depth, alias, token and cost limits all fail at parse or validate time.
   * Syntax errors are thrown, so the masker counts them; validation errors are counted here.
   */
  function useInputErrorCodes(): Plugin {
    return {
      onParse:
        () =>
        ({ result, replaceParseResult }) => {
          if (result instanceof GraphQLError) replaceParseResult(withCode(result, ErrorCode.BadUserInput));
        },
      onValidate:
        () =>
        ({ result, setResult }) => {
          // graphql-js' validate returns GraphQLErrors; envelop types them loosely.
          const errors = result as readonly GraphQLError[];
          if (errors.length > 0) setResult(errors.map((e) => counted(withCode(e, ErrorCode.BadUserInput))));
        },
    };
  }

  return { maskError, useInputErrorCodes };
}

export type ErrorShaper = ReturnType<typeof createErrorShaper>;
