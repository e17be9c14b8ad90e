import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, InvalidTokenError, type TokenVerifier, type Viewer } from '../auth/token.js';
import type { Config } from '../config.js';
import { clientError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Context, Services } from '../schema/builder.js';
import { createErrorMasker, useInputErrorCodes } from './error-codes.js';

/** What the Node server hands Yoga; a WebSocket operation adds the viewer it authenticated. */
export interface ServerContext {
  req?: IncomingMessage;
  res?: ServerResponse;
  viewer?: Viewer;
}

export type HeraldYoga = YogaServerInstance<ServerContext, Context>;

export interface YogaOptions {
  schema: GraphQLSchema;
  services: Services;
  config: Config;
  verify: TokenVerifier;
  logger: Logger;
  onAuthFailure: () => void;
  /** Headers GraphiQL starts with; dev puts a ready-to-use token here. */
  graphiqlHeaders?: Record<string, string>;
}

/**
 * GraphQL over HTTP and SSE, and GraphiQL, on /graphql. Every operation needs a token; the
 * document limits (depth, aliases, tokens, cost) apply to every transport through the envelop.
 */
export function createYogaServer(options: YogaOptions): HeraldYoga {
  const { schema, services, config, verify, logger } = options;
  const { limits } = config;
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: logger,
    batching: false,
    graphiql: {
      title: 'Herald',
      headers: options.graphiqlHeaders ? JSON.stringify(options.graphiqlHeaders, null, 2) : undefined,
    },
    maskedErrors: { maskError: createErrorMasker(logger) },
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: limits.maxQueryDepth, exposeLimits: true },
        maxAliases: { n: limits.maxQueryAliases, exposeLimits: true },
        maxTokens: { n: limits.maxQueryTokens, exposeLimits: true },
        costLimit: { maxCost: limits.maxQueryCost, exposeLimits: true },
        maxDirectives: { n: 20, exposeLimits: true },
        blockFieldSuggestion: { enabled: config.mode !== 'dev' },
      }),
      useInputErrorCodes(),
    ],
    context: async ({ request, viewer }) => {
      if (viewer) return { viewer, services };
      try {
        return { viewer: await verify(bearerToken(request.headers.get('authorization'))), services };
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        options.onAuthFailure();
        throw clientError(ErrorCode.Unauthenticated, error.message);
      }
    },
  });
}
