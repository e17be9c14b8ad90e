import type { ExecutionArgs } from 'graphql';
import { GraphQLError, getOperationAST } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Server } from 'node:http';
import { WebSocketServer } from 'ws';
import { bearerToken, InvalidTokenError, type TokenVerifier, type Viewer } from '../auth/token.js';
import { CloseCode, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PresenceRegistry } from '../presence/registry.js';
import type { Metrics } from './metrics.js';
import type { HeraldYoga } from './yoga.js';

/** The longest delay setTimeout accepts; a later expiry is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface ConnectionState {
  viewer?: Viewer;
  expiryTimer?: NodeJS.Timeout;
  /** Set once the connection counts in presence, so it is taken off exactly once. */
  present?: boolean;
  closed?: boolean;
}

export interface WebSocketOptions {
  server: Server;
  yoga: HeraldYoga;
  verify: TokenVerifier;
  logger: Logger;
  metrics: Metrics;
  /** Counts each acknowledged connection for its user, across instances. */
  presence: PresenceRegistry;
  /** Keep-alive ping interval; a peer that misses a pong is dropped. */
  keepAliveMs?: number;
}

/**
 * graphql-ws (`graphql-transport-ws`) on the same port and path as Yoga, executing through
 * Yoga's envelop so limits, error codes and masking are the same on every transport. The token
 * comes in connection_init; a missing, bad or expired one closes the socket with 4401.
 */
export function attachWebSocketServer(options: WebSocketOptions) {
  const { server, yoga, verify, logger, metrics, presence } = options;
  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: 1024 * 1024 });
  const states = new WeakMap<object, ConnectionState>();

  function closeUnauthorized(socket: { close(code: number, reason: string): void }, reason: string) {
    metrics.authFailures.inc({ transport: 'websocket' });
    socket.close(CloseCode.Unauthorized, reason);
  }

  function armExpiry(state: ConnectionState, socket: { close(code: number, reason: string): void }) {
    const expiresAt = state.viewer?.expiresAt;
    if (!expiresAt) return;
    const delay = Math.min(Math.max(expiresAt * 1000 - Date.now(), 0), MAX_TIMER_MS);
    state.expiryTimer = setTimeout(() => {
      if (expiresAt * 1000 <= Date.now()) closeUnauthorized(socket, 'Token expired');
      else armExpiry(state, socket);
    }, delay);
  }

  const disposable = useServer(
    {
      connectionInitWaitTimeout: 10_000,
      onConnect: async (ctx) => {
        const state: ConnectionState = {};
        states.set(ctx, state);
        try {
          state.viewer = await verify(bearerToken(ctx.connectionParams?.authorization));
        } catch (error) {
          if (!(error instanceof InvalidTokenError)) throw error;
          closeUnauthorized(ctx.extra.socket, error.message.slice(0, 120));
          return false;
        }
        if (state.closed) return false;
        armExpiry(state, ctx.extra.socket);
        presence.connected(state.viewer.id);
        state.present = true;
        metrics.connections.inc();
        logger.info({ userId: state.viewer.id }, 'websocket connected');
        return true;
      },
      onClose: (ctx, code) => {
        const state = states.get(ctx);
        if (state?.expiryTimer) clearTimeout(state.expiryTimer);
        if (state) state.closed = true;
        if (state?.present && state.viewer) presence.disconnected(state.viewer.id);
        if (state?.viewer && ctx.acknowledged) {
          metrics.connections.dec();
          logger.info({ userId: state.viewer.id, code }, 'websocket closed');
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        const viewer = states.get(ctx)?.viewer;
        if (!viewer) return [new GraphQLError('not authenticated', { extensions: { code: ErrorCode.Unauthenticated } })];
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          req: ctx.extra.request,
          viewer,
          params: payload,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const operation = getOperationAST(document, payload.operationName)?.operation ?? 'query';
        metrics.operations.inc({ type: operation, transport: 'websocket' });
        const args: ExecutionArgs = {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        return args;
      },
      execute: (args) => (args.rootValue as { execute: typeof import('graphql').execute }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: typeof import('graphql').subscribe }).subscribe(args),
    },
    wss,
    options.keepAliveMs ?? 12_000,
  );

  return {
    wss,
    async close(): Promise<void> {
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
