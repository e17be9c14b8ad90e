import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { NoSchemaIntrospectionCustomRule, type GraphQLError, type GraphQLSchema, type ValidationContext } from 'graphql';
import { createYoga, type GraphiQLOptions, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RevocationList } from '../auth/revocations.js';
import { bearerToken, InvalidTokenError, type TokenVerifier, type Viewer } from '../auth/token.js';
import type { Config } from '../config.js';
import { clientError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ConnectionHandle, Context, Services } from '../schema/builder.js';
import { MASKED_ERROR_MESSAGE, type ErrorShaper } from './error-codes.js';
import { eventStreamCookieToken, useEventStreamIds } from './event-source.js';
import type { LimitName } from './metrics.js';
import { usePersistedOperations, type PersistedOperations } from './persisted-operations.js';
import type { RateLimiter } from '../rate-limiter.js';
import { useMutationRateLimit } from './rate-limit.js';
import { drainRefusedBody, type DrainLimits } from './refused-body.js';
import { useStreamRevocation } from './stream-revocation.js';
import { useSubscriptionExecution, type SubscriptionExecutor } from './subscription-execution.js';
import { useMutationTracing } from './tracing.js';

/** What the Node server hands Yoga; a WebSocket operation adds the viewer it authenticated and its connection. */
export interface ServerContext {
  req?: IncomingMessage;
  res?: ServerResponse;
  viewer?: Viewer;
  connection?: ConnectionHandle;
}

export type HeraldYoga = YogaServerInstance<ServerContext, Context>;

export interface YogaOptions {
  schema: GraphQLSchema;
  services: Services;
  config: Config;
  verify: TokenVerifier;
  logger: Logger;
  /** Masks and counts errors; shared with the WebSocket transport. */
  errors: ErrorShaper;
  onAuthFailure: () => void;
  /** Counts mutations per user, on every transport. */
  mutationLimiter: RateLimiter;
  /** Starts subscriptions (shared with the WebSocket transport). */
  subscribe: SubscriptionExecutor;
  /** Ends a revoked user's SSE subscriptions. */
  revocations: RevocationList;
  onLimitHit: (limit: LimitName) => void;
  /** Largest request body, counted as it streams in (a chunked body has no Content-Length to check). */
  maxBodyBytes: number;
  /** With PERSISTED_OPERATIONS=only, the allowed document each request names by hash. */
  persisted?: PersistedOperations;
  /** Headers GraphiQL starts with; dev puts a ready-to-use token here. */
  graphiqlHeaders?: Record<string, string>;
}

/**
 * Armor's validation rules throw by default, which escapes `validate`: HTTP then answers 200
 * instead of 400, and graphql-ws closes the whole socket (4500). Reported to the validation
 * context instead, a limit is an ordinary validation error on every transport. (The token limit
 * is enforced while parsing, where a thrown error already is a syntax error.)
 */
const reportAsValidationError = {
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
};

/**
 * A body Yoga refuses part-way (413) is read on, within `limits`, before the answer goes out, so a
 * client still sending reads the 413 rather than a reset; the connection then closes.
 */
function useRefusedBodyDrain(limits: DrainLimits, onRefused: () => void): Plugin<object, ServerContext> {
  return {
    onResponse: async ({ response, serverContext }) => {
      if (response.status !== 413) return;
      response.headers.set('connection', 'close');
      onRefused();
      if (serverContext.req) await drainRefusedBody(serverContext.req, limits);
    },
  };
}

/** Refuses `__schema` and `__type` as a validation error (BAD_USER_INPUT), on every transport. */
function useNoIntrospection(): Plugin {
  return { onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule) };
}

/**
 * GraphiQL with its scripts, styles and editor workers inlined (Yoga's default loads them from a
 * public CDN, and is blank wherever that is out of reach). The package is about 9 MB, so it is
 * loaded on the first GraphiQL request; the page, the same on every request of one server, is
 * rendered once. A failed load is not kept, so the next request tries again.
 */
function createGraphiQLRenderer(): (options: GraphiQLOptions) => Promise<Uint8Array<ArrayBuffer>> {
  let page: Promise<Uint8Array<ArrayBuffer>> | null = null;
  return (options) => {
    page ??= import('@graphql-yoga/render-graphiql').then(
      ({ renderGraphiQL }) => new TextEncoder().encode(renderGraphiQL(options)),
      (error: unknown) => {
        page = null;
        throw error;
      },
    );
    return page;
  };
}

/**
 * GraphQL over HTTP and SSE, and GraphiQL (unless turned off), on /graphql. Every operation needs a token: in the
 * Authorization header, or for an EventSource (which cannot send headers) in the SSE cookie; the
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
    maxRequestBodySize: options.maxBodyBytes,
    graphiql: config.graphiql && {
      title: 'Herald',
      headers: options.graphiqlHeaders ? JSON.stringify(options.graphiqlHeaders, null, 2) : undefined,
    },
    renderGraphiQL: createGraphiQLRenderer(),
    maskedErrors: { maskError: options.errors.maskError, errorMessage: MASKED_ERROR_MESSAGE },
    plugins: [
      ...(options.persisted ? [usePersistedOperations(options.persisted)] : []),
      EnvelopArmorPlugin({
        maxDepth: { n: limits.maxQueryDepth, exposeLimits: true, ...reportAsValidationError },
        maxAliases: { n: limits.maxQueryAliases, exposeLimits: true, ...reportAsValidationError },
        maxTokens: { n: limits.maxQueryTokens, exposeLimits: true },
        costLimit: { maxCost: limits.maxQueryCost, exposeLimits: true, ...reportAsValidationError },
        maxDirectives: { n: 20, exposeLimits: true, ...reportAsValidationError },
        blockFieldSuggestion: { enabled: config.mode !== 'dev' },
      }),
      useSubscriptionExecution(options.subscribe),
      ...(config.introspection ? [] : [useNoIntrospection()]),
      options.errors.useInputErrorCodes(),
      useMutationRateLimit(options.mutationLimiter, () => options.onLimitHit('mutations_per_minute'), options.errors.maskError),
      useStreamRevocation(options.revocations),
      useEventStreamIds(),
      useRefusedBodyDrain(config.limits.refusedBodyDrain, () => options.onLimitHit('request_body_size')),
      ...(config.tracing ? [useMutationTracing()] : []),
    ],
    context: async ({ request, viewer, connection }) => {
      if (viewer) return { viewer, services, connection };
      const token = bearerToken(request.headers.get('authorization')) ?? eventStreamCookieToken(request);
      const lastEventId = request.headers.get('last-event-id') || undefined;
      try {
        return { viewer: await verify(token), services, lastEventId };
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        options.onAuthFailure();
        throw clientError(ErrorCode.Unauthenticated, error.message);
      }
    },
  });
}
