import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';

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
 * Gives every rejected document the contract's BAD_USER_INPUT code: syntax errors, validation
 * errors and the depth, alias, token and cost limits all fail at parse or validate time.
 */
export function useInputErrorCodes(): Plugin {
  return {
    onParse:
      () =>
      ({ result, replaceParseResult }) => {
        if (result instanceof GraphQLError) replaceParseResult(withCode(result, ErrorCode.BadUserInput));
      },
    onValidate:
      () =>
      ({ result, setResult }) => {
        if (result.length > 0) setResult(result.map((e) => withCode(e, ErrorCode.BadUserInput)));
      },
  };
}

/** What a client sees of an unexpected error; the log has the rest. */
export const MASKED_ERROR_MESSAGE = 'Unexpected error.';

const CONTRACT_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * Expected errors (GraphQLErrors: ours carry a code; the rest are argument coercion errors) go
 * to the client; anything else is logged and masked as INTERNAL_SERVER_ERROR.
 */
export function createErrorMasker(logger: Logger) {
  return (error: unknown, message: string): Error => {
    const graphQLError = error instanceof GraphQLError ? error : null;
    const original = graphQLError?.originalError;
    if (graphQLError && (!original || original instanceof GraphQLError)) {
      const source = original instanceof GraphQLError ? original : graphQLError;
      // Yoga's own request errors (BAD_REQUEST, REQUEST_ENTITY_TOO_LARGE, ...) are bad input too.
      const given = source.extensions?.code;
      const code = typeof given === 'string' && CONTRACT_CODES.has(given) ? given : ErrorCode.BadUserInput;
      return new GraphQLError(source.message, {
        nodes: graphQLError.nodes,
        path: graphQLError.path,
        extensions: { ...source.extensions, code },
      });
    }
    logger.error({ err: original ?? error, path: graphQLError?.path }, 'unexpected error');
    return new GraphQLError(message, {
      nodes: graphQLError?.nodes,
      path: graphQLError?.path,
      extensions: { code: ErrorCode.Internal },
    });
  };
}
