import type { execute, ExecutionArgs, ExecutionResult, GraphQLFormattedError, GraphQLSchema, parse, validate } from 'graphql';
import { GraphQLError, getOperationAST, OperationTypeNode } from 'graphql';
import { handleProtocols, type SubscribePayload } from 'graphql-ws';
import type { Server } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { revokes, type RevocationList } from '../auth/revocations.js';
import { bearerToken, InvalidTokenError, type TokenVerifier, type Viewer } from '../auth/token.js';
import type { Config } from '../config.js';
import { clientError, CloseCode, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PresenceRegistry } from '../presence/registry.js';
import type { ConnectionHandle } from '../schema/builder.js';
import { clientAddress, createConnectionCaps } from './connection-caps.js';
import { startKeepAlive } from './keep-alive.js';
import type { Metrics } from './metrics.js';
import { createSecondWheel } from '../timeouts.js';
import { isEventStream } from '../updates/event-stream.js';
import { isAsyncIterable } from './async-iterable.js';
import { withoutHttp, type ErrorShaper } from './error-codes.js';
import type { PersistedOperations } from './persisted-operations.js';
import type { SubscriptionExecutor } from './subscription-execution.js';
import type { HeraldYoga } from './yoga.js';
import {
  ProtocolSession,
  speaksGraphqlWs,
  type OperationHandle,
  type OperationOutcome,
  type SessionHooks,
  type SessionOptions,
} from './ws-protocol.js';

const PAYLOAD = Symbol('payload');

/** `T` with its properties assignable. */
type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** What the connections of one server share: the server's half of each of their hooks. */
interface ConnectionServer {
  admit(connection: Connection, authorization: unknown): Promise<boolean>;
  start(connection: Connection, operation: OperationHandle, payload: SubscribePayload): Promise<OperationOutcome>;
  serialize(result: ExecutionResult): string;
  failed(connection: Connection, id: string, error: unknown): GraphQLFormattedError[];
  reauthenticate(connection: Connection, viewer: Viewer): void;
  slowConsumer(connection: Connection): void;
  /** The connection has no subscription left (or never had one since it was admitted). */
  idle(connection: Connection): void;
  closed(connection: Connection, code: number): void;
  logger: Logger;
}

/**
 * One WebSocket that speaks graphql-ws: the hooks of its ProtocolSession, and the handle its
 * operations get to re-authenticate it. A server holds thousands, so the hooks are methods on the
 * prototype that hand the connection to the server's shared functions, not closures per connection.
 */
class Connection implements SessionHooks, ConnectionHandle {
  readonly openedAt = Date.now();
  viewer: Viewer | null = null;
  /** Set once the connection counts in presence (and the gauge), so it is taken off exactly once. */
  present = false;
  isClosed = false;
  /** Subscription operations running on it, for the per-connection cap (each marked `counted`). */
  subscriptions = 0;
  /** The second (Unix time) it is closed for idling at, while it has no subscription; 0 otherwise. */
  idleUntil = 0;

  constructor(
    private readonly server: ConnectionServer,
    readonly socket: WebSocket,
    /** Numbers the connection in this process's log lines about it (pino adds the host and pid). */
    readonly id: number,
  ) {}

  async init(payload: Record<string, unknown> | undefined): Promise<boolean> {
    if (!(await this.server.admit(this, payload?.authorization))) return false;
    this.server.idle(this);
    this.server.logger.info({ connectionId: this.id, userId: this.viewer!.id }, 'websocket connected');
    return true;
  }

  start(operation: OperationHandle, payload: SubscribePayload): Promise<OperationOutcome> {
    return this.server.start(this, operation, payload);
  }

  ended(operation: OperationHandle): void {
    if (!operation.counted) return;
    operation.counted = false;
    this.subscriptions -= 1;
    if (this.subscriptions === 0 && !this.isClosed) this.server.idle(this);
  }

  serialize(result: ExecutionResult): string {
    return this.server.serialize(result);
  }

  failed(id: string, error: unknown): GraphQLFormattedError[] {
    return this.server.failed(this, id, error);
  }

  closed(code: number): void {
    this.server.closed(this, code);
  }

  slowConsumer(): void {
    this.server.slowConsumer(this);
  }

  reauthenticate(viewer: Viewer): void {
    this.server.reauthenticate(this, viewer);
  }
}

/** envelop types what getEnveloped returns loosely (any); these are the graphql-js functions its plugins wrap. */
interface Enveloped {
  schema: GraphQLSchema;
  parse: typeof parse;
  validate: typeof validate;
  execute: typeof execute;
  contextFactory: () => unknown;
}

export interface WebSocketOptions {
  server: Server;
  yoga: HeraldYoga;
  verify: TokenVerifier;
  logger: Logger;
  metrics: Metrics;
  /** Masks and counts errors; shared with Yoga. */
  errors: ErrorShaper;
  /** Counts each acknowledged connection for its user, across instances, and enforces the per-user cap. */
  presence: PresenceRegistry;
  /** Starts subscriptions (shared with Yoga's SSE). */
  subscribe: SubscriptionExecutor;
  /** Closes a revoked user's connections here when any instance revokes them. */
  revocations: RevocationList;
  config: Pick<Config, 'limits' | 'websocket'>;
  /** With PERSISTED_OPERATIONS=only, the allowed document a subscribe message names by hash. */
  persisted?: PersistedOperations;
}

/** The connections of this process by user (connection state): what a revocation closes and presence counts. */
function createConnectionRegistry(presence: PresenceRegistry, metrics: Metrics) {
  const byUser = new Map<string, Set<Connection>>();
  return {
    /** An admitted connection counts for its user, here and in presence, from now until {@link remove}. */
    add(connection: Connection, viewer: Viewer): void {
      connection.viewer = viewer;
      connection.present = true;
      metrics.connections.inc();
      const mine = byUser.get(viewer.id) ?? new Set();
      byUser.set(viewer.id, mine.add(connection));
    },
    /** Takes a closed connection off, once, if it ever counted. */
    remove(connection: Connection): void {
      if (!connection.present || !connection.viewer) return;
      connection.present = false;
      presence.disconnected(connection.viewer.id);
      metrics.connections.dec();
      const mine = byUser.get(connection.viewer.id);
      mine?.delete(connection);
      if (mine?.size === 0) byUser.delete(connection.viewer.id);
    },
    of(userId: string): Iterable<Connection> {
      return byUser.get(userId) ?? [];
    },
  };
}
type ConnectionRegistry = ReturnType<typeof createConnectionRegistry>;

interface AuthOptions extends Pick<WebSocketOptions, 'verify' | 'presence' | 'revocations' | 'metrics' | 'logger'> {
  registry: ConnectionRegistry;
  maxConnectionsPerUser: number;
}

/**
 * Who may stay connected (upgrade + auth): the token of connection_init (4401), the per-user cap
 * (4429), the token's expiry (4401 when it passes, moved by `refreshToken`) and revocations (4403).
 */
function createWebSocketAuth(options: AuthOptions) {
  const { verify, presence, revocations, metrics, logger, registry, maxConnectionsPerUser } = options;

  function closeUnauthorized(socket: WebSocket, reason: string) {
    metrics.authFailures.inc({ transport: 'websocket' });
    socket.close(CloseCode.Unauthorized, reason);
  }

  /** Every connection's token expiry on one timer, keyed by the `exp` of its viewer's token. */
  const expiries = createSecondWheel<Connection>((connection) => closeUnauthorized(connection.socket, 'Token expired'));
  const armExpiry = (connection: Connection) => {
    const expiresAt = connection.viewer?.expiresAt;
    if (expiresAt && !connection.isClosed) expiries.add(connection, expiresAt);
  };
  const disarmExpiry = (connection: Connection) => {
    const expiresAt = connection.viewer?.expiresAt;
    if (expiresAt) expiries.delete(connection, expiresAt);
  };

  const stopRevocations = revocations.onRevoked((userId, revokedAt) => {
    let closed = 0;
    for (const connection of registry.of(userId)) {
      if (connection.socket.readyState !== WebSocket.OPEN || !revokes(revokedAt, connection.viewer!)) continue;
      connection.socket.close(CloseCode.Revoked, 'Access revoked');
      metrics.revokedConnections.inc();
      closed += 1;
    }
    if (closed > 0) logger.info({ userId, closed }, 'websocket connections of a revoked user closed');
    return closed;
  });

  return {
    /** Verifies the token and takes a place under the user's cap; false once the socket is closed. */
    async admit(this: void, connection: Connection, authorization: unknown): Promise<boolean> {
      const { socket } = connection;
      let viewer: Viewer;
      try {
        viewer = await verify(bearerToken(authorization));
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        closeUnauthorized(socket, error.message.slice(0, 120));
        return false;
      }
      if (connection.isClosed) return false;
      if (!(await presence.admit(viewer.id, maxConnectionsPerUser))) {
        metrics.limitsHit.inc({ limit: 'connections_per_user' });
        socket.close(CloseCode.TooManyConnections, `Too many connections: at most ${maxConnectionsPerUser} per user`);
        return false;
      }
      if (connection.isClosed) {
        presence.disconnected(viewer.id);
        return false;
      }
      registry.add(connection, viewer);
      // A revocation applied while Redis was counting the connection could not find it to close it.
      if (revocations.isRevoked(viewer)) {
        socket.close(CloseCode.Revoked, 'Access revoked');
        return false;
      }
      armExpiry(connection);
      return true;
    },
    reauthenticate(this: void, connection: Connection, viewer: Viewer): void {
      if (connection.isClosed || viewer.id !== connection.viewer?.id) return;
      disarmExpiry(connection);
      connection.viewer = viewer;
      armExpiry(connection);
      logger.info({ connectionId: connection.id, userId: viewer.id, expiresAt: viewer.expiresAt }, 'websocket token refreshed');
    },
    /** The connection closed: its expiry is dropped. */
    closed: disarmExpiry,
    stop: stopRevocations,
  };
}

/**
 * The JSON of each result (fan-out), masked and serialized once however many subscribers it goes
 * to: kept on the result under a symbol, invisible to JSON.
 */
function createResultSerializer(maskError: ErrorShaper['maskError']) {
  return (result: ExecutionResult & { [PAYLOAD]?: string }): string => {
    let json = result[PAYLOAD];
    if (json === undefined) {
      const errors = result.errors?.map((error) => maskError(error));
      json = JSON.stringify(errors ? { ...result, errors: withoutHttp(errors) } : result);
      result[PAYLOAD] = json;
    }
    return json;
  };
}

interface OperationOptions extends Pick<WebSocketOptions, 'yoga' | 'errors' | 'subscribe' | 'metrics' | 'logger' | 'persisted'> {
  maxSubscriptionsPerConnection: number;
  /** A subscription starts on the connection: it is no longer idle. */
  subscribed(connection: Connection): void;
}

/**
 * How a subscribe message runs (protocol): parsed, validated and executed through Yoga's envelop,
 * so limits, error codes and masking are those of HTTP; subscriptions capped per connection.
 */
function createOperationRunner(options: OperationOptions) {
  const { yoga, metrics, logger, maxSubscriptionsPerConnection } = options;
  const { maskError } = options.errors;
  /** Errors an operation is refused with, masked (and counted) like every other error sent. */
  const refused = (errors: readonly GraphQLError[]): OperationOutcome => ({
    errors: withoutHttp(errors.map((error) => maskError(error))),
  });

  return {
    async start(
      this: void,
      connection: Connection,
      handle: OperationHandle,
      payload: SubscribePayload,
    ): Promise<OperationOutcome> {
      const viewer = connection.viewer!;
      const params: Writable<SubscribePayload> = { ...payload };
      const enveloped: Enveloped = yoga.getEnveloped({ viewer, connection, params });
      const { schema, execute, contextFactory, parse, validate } = enveloped;
      let document;
      try {
        document = parse(options.persisted ? options.persisted(params) : params.query);
      } catch (error) {
        return refused([error instanceof GraphQLError ? error : new GraphQLError(String(error))]);
      }
      const errors = validate(schema, document);
      if (errors.length > 0) return refused(errors);
      // A subscription keeps its context, and with it `params`, while it runs: the text of the
      // document Yoga's parser cache gave is one string for every subscriber sending the same text.
      if (params.query === document.loc?.source.body) params.query = document.loc.source.body;
      const operation = getOperationAST(document, params.operationName);
      if (!operation) return refused([clientError(ErrorCode.BadUserInput, 'Unable to identify operation')]);
      if (operation.operation === OperationTypeNode.SUBSCRIPTION) {
        if (connection.subscriptions >= maxSubscriptionsPerConnection) {
          metrics.limitsHit.inc({ limit: 'subscriptions_per_connection' });
          const error = clientError(
            ErrorCode.RateLimited,
            `too many subscriptions: at most ${maxSubscriptionsPerConnection} per connection; complete one first`,
            { limit: 'subscriptions_per_connection' },
          );
          return refused([error]);
        }
        connection.subscriptions += 1;
        handle.counted = true;
        options.subscribed(connection);
      }
      metrics.operations.inc({ type: operation.operation, transport: 'websocket' });
      const args: ExecutionArgs = {
        schema,
        document,
        operationName: params.operationName,
        variableValues: params.variables,
        contextValue: await contextFactory(),
      };
      // Subscriptions skip the envelop's per-result hooks, which would cost each subscriber a promise
      // chain per update: their one hook, error masking, is done by `serialize`, once per result.
      const result = operation.operation === OperationTypeNode.SUBSCRIPTION ? await options.subscribe(args) : await execute(args);
      if (isEventStream(result)) return { stream: result };
      if (isAsyncIterable(result)) throw new Error('an operation other than a subscription returned a stream');
      return { result };
    },
    failed(this: void, connection: Connection, id: string, error: unknown): GraphQLFormattedError[] {
      logger.error(
        {
          err: error instanceof Error ? error.message : String(error),
          connectionId: connection.id,
          userId: connection.viewer?.id,
          id,
        },
        'subscription failed',
      );
      return withoutHttp([maskError(clientError(ErrorCode.Internal, 'Internal server error'))]);
    },
  };
}

/**
 * Closes connections that hold no subscription for `idleTimeoutMs` (WS_IDLE_TIMEOUT_MS), all on one
 * second wheel; with 0, nothing. A connection is idle from its acknowledgement and whenever its last
 * subscription ends, and busy again from its next subscribe.
 */
function createIdleTimeout(idleTimeoutMs: number, onIdle: (connection: Connection) => void) {
  const wheel = createSecondWheel<Connection>((connection) => {
    connection.idleUntil = 0;
    onIdle(connection);
  });
  return {
    idle(this: void, connection: Connection): void {
      if (idleTimeoutMs === 0 || connection.idleUntil !== 0) return;
      connection.idleUntil = Math.ceil((Date.now() + idleTimeoutMs) / 1000);
      wheel.add(connection, connection.idleUntil);
    },
    busy(this: void, connection: Connection): void {
      if (connection.idleUntil === 0) return;
      wheel.delete(connection, connection.idleUntil);
      connection.idleUntil = 0;
    },
  };
}

/**
 * ws closes a socket whose message is over `maxPayload` with 1009 and no reason (by design,
 * websockets/ws#2224), calling the socket's public `close`. A client should learn which limit it
 * hit, so the server makes its sockets from this subclass (ws' `WebSocket` option) to add one.
 */
function socketClassNamingSizeLimit(maxBytes: number): typeof WebSocket {
  return class extends WebSocket {
    override close(code?: number, reason?: string | Buffer): void {
      super.close(code, code === CloseCode.MessageTooBig && !reason ? `Message over ${maxBytes} bytes` : reason);
    }
  };
}

/**
 * graphql-ws (`graphql-transport-ws`) on the same port and path as Yoga, executing through
 * Yoga's envelop so limits, error codes and masking are the same on every transport. The token
 * comes in connection_init; a missing, bad, expired or revoked one closes the socket with 4401, a
 * later expiry with 4401 (a timer), a revocation with 4403, and a user's connection beyond the
 * cap with 4429. `refreshToken` re-authenticates a connection in place through the
 * ConnectionHandle on its operations' context.
 */
export function attachWebSocketServer(options: WebSocketOptions) {
  const { server, logger, metrics, presence } = options;
  const { limits, websocket } = options.config;
  const wss = new WebSocketServer({
    server,
    path: '/graphql',
    maxPayload: limits.maxRequestBytes,
    WebSocket: socketClassNamingSizeLimit(limits.maxRequestBytes),
    handleProtocols,
    perMessageDeflate: websocket.perMessageDeflate,
  });
  const registry = createConnectionRegistry(presence, metrics);
  const auth = createWebSocketAuth({ ...options, registry, maxConnectionsPerUser: limits.maxConnectionsPerUser });
  const idleTimeout = createIdleTimeout(websocket.idleTimeoutMs, (connection) => {
    metrics.limitsHit.inc({ limit: 'idle_timeout' });
    connection.socket.close(CloseCode.Idle, `Idle: no subscription for ${websocket.idleTimeoutMs} ms`);
  });
  const caps = createConnectionCaps(limits);
  const operations = createOperationRunner({
    ...options,
    maxSubscriptionsPerConnection: limits.maxSubscriptionsPerConnection,
    subscribed: idleTimeout.busy,
  });
  const connections: ConnectionServer = {
    admit: auth.admit,
    reauthenticate: auth.reauthenticate,
    start: operations.start,
    failed: operations.failed,
    serialize: createResultSerializer(options.errors.maskError),
    idle: idleTimeout.idle,
    slowConsumer(connection) {
      metrics.slowConsumerCloses.inc();
      logger.info({ connectionId: connection.id, userId: connection.viewer?.id }, 'websocket closed: client stopped reading');
    },
    /** One line per connection that spoke graphql-ws, admitted or not: who, how it ended, how long it lasted. */
    closed(connection, code) {
      connection.isClosed = true;
      auth.closed(connection);
      idleTimeout.busy(connection);
      const durationMs = Date.now() - connection.openedAt;
      metrics.connectionDuration.observe(durationMs / 1000);
      logger.info({ connectionId: connection.id, userId: connection.viewer?.id, code, durationMs }, 'websocket closed');
      registry.remove(connection);
    },
    logger,
  };
  const sessionOptions: SessionOptions = {
    initTimeoutMs: 10_000,
    maxBufferedBytes: websocket.maxBufferedBytes,
    slowConsumerMs: websocket.slowConsumerMs,
    slowConsumerCloseCode: CloseCode.SlowConsumer,
  };
  const stopKeepAlive = startKeepAlive(wss, websocket.keepAliveMs, () => metrics.deadConnections.inc());
  metrics.measureBufferedBytes(() => {
    let bytes = 0;
    for (const socket of wss.clients) bytes += socket.bufferedAmount;
    return bytes;
  });

  // ws has already closed or destroyed the socket when it reports an error: 1009 for a message over
  // maxPayload, 1002 for a protocol error. It is a client's or the
  // network's doing: counted and logged.
  const socketError = (error: Error & { code?: string }) => {
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') metrics.limitsHit.inc({ limit: 'websocket_message_size' });
    logger.info({ err: error.message, code: error.code }, 'websocket error');
  };

  let connectionCount = 0;
  wss.on('connection', (socket, request) => {
    socket.on('error', socketError);
    const address = clientAddress(request, limits.trustedProxies);
    const refusal = caps.take(address);
    if (refusal) {
      metrics.limitsHit.inc({ limit: refusal.limit });
      const code = refusal.limit === 'connections_per_instance' ? CloseCode.TryAgainLater : CloseCode.TooManyConnections;
      socket.close(code, refusal.reason);
      return;
    }
    socket.on('close', () => caps.release(address));
    if (!speaksGraphqlWs(socket)) {
      socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    new ProtocolSession(socket, request.socket, new Connection(connections, socket, ++connectionCount), sessionOptions);
  });

  return {
    wss,
    async close(): Promise<void> {
      stopKeepAlive();
      auth.stop();
      for (const socket of wss.clients) socket.close(CloseCode.GoingAway, 'Going away');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
