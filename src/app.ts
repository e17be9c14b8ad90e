import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRevocationList } from './auth/revocations.js';
import { createServiceKeyStore } from './auth/service-keys.js';
import { createTokenVerifier } from './auth/token.js';
import type { Config } from './config.js';
import { createJobControl } from './jobs/control.js';
import { createDocumentStore } from './jobs/documents.js';
import { countPublished, tracePublished, watchQueues } from './jobs/metrics.js';
import { createStuckWatcher } from './jobs/stuck.js';
import { createQueues } from './jobs/queues.js';
import type { Logger } from './logger.js';
import { labelInstance, watchRedis } from './metrics.js';
import { createNotificationStore } from './notifications/store.js';
import { createPresenceRegistry } from './presence/registry.js';
import { createRoomPresence } from './presence/rooms.js';
import { createRedisConnections } from './redis.js';
import { createResourceRegistry } from './resources/registry.js';
import type { Services } from './schema/builder.js';
import { schema } from './schema/index.js';
import { createErrorShaper } from './transport/error-codes.js';
import { createHttpHandler } from './transport/http.js';
import { createIdempotencyStore } from './transport/idempotency.js';
import { createPersistedOperations } from './transport/persisted-operations.js';
import { createMetrics } from './transport/metrics.js';
import { createPublishHandler } from './transport/publish.js';
import { createRateLimiter } from './rate-limiter.js';
import { createSubscriptionExecutor } from './transport/subscription-execution.js';
import { attachWebSocketServer } from './transport/websocket.js';
import { createYogaServer } from './transport/yoga.js';
import { createUpdateHub } from './updates/hub.js';
import { createUpdateStore } from './updates/store.js';
import { createLivePage } from './web/page.js';

/**
 * How long a publish request holds its Idempotency-Key while it runs: longer than an append takes
 * even through a Redis failover (REDIS_FAILOVER_WAIT_MS' default, 20 s), short enough that a retry
 * after a crash is not kept waiting long.
 */
const PUBLISH_PENDING_MS = 30_000;

export interface AppOptions {
  logger: Logger;
  /** Dev only: a token GraphiQL (in its headers) and the live page (in its token field) start with. */
  devToken?: string;
}

/**
 * The API process: Yoga (HTTP, SSE, GraphiQL) and graphql-ws on one port, over one set of Redis
 * connections. The same factory serves `npm start`, `npm run dev` and the tests.
 */
export function buildApp(config: Config, options: AppOptions) {
  const { logger } = options;
  const connections = createRedisConnections(config.redis, logger);
  const redis = connections.commands;
  const traced = config.tracing !== null;
  const metrics = createMetrics({ traceDeliveries: traced });
  const store = tracePublished(
    countPublished(createUpdateStore(redis, { keyPrefix: config.keyPrefix, ...config.updates }), metrics.registry),
    traced,
  );
  const resources = createResourceRegistry(redis, config.keyPrefix, config.updates.ttlSeconds);
  const documents = createDocumentStore(redis, config.keyPrefix, config.updates.ttlSeconds);
  const queues = createQueues(connections.bullmq, config);
  const stuckSettings = {
    redis,
    keyPrefix: config.keyPrefix,
    stuckAfterMs: config.jobs.stuckAfterMs,
    heartbeatTimeoutMs: config.jobs.heartbeatTimeoutMs,
  };
  watchQueues(metrics.registry, queues.all, stuckSettings);
  watchRedis(metrics.registry, { commands: redis, subscriber: connections.subscriber, bullmq: connections.bullmq });
  const onPresenceError = (error: Error) => logger.warn({ err: error.message }, 'presence write failed');
  const instanceId = randomUUID();
  const rooms = createRoomPresence(redis, { keyPrefix: config.keyPrefix, instanceId, onError: onPresenceError });
  const presence = createPresenceRegistry(redis, {
    keyPrefix: config.keyPrefix,
    ...config.presence,
    instanceId,
    states: [rooms],
    onError: onPresenceError,
  });
  const hub = createUpdateHub(connections.subscriber, metrics.deliveries);
  const revocations = createRevocationList(redis, hub, {
    keyPrefix: config.keyPrefix,
    ttlSeconds: config.auth.revocationTtlSeconds,
    onError: (error) => logger.warn({ err: error.message }, 'could not load revocations'),
  });
  const verify = createTokenVerifier({ secret: config.jwtSecret, provider: config.identityProvider }, (viewer) =>
    revocations.check(viewer),
  );
  const services: Services = {
    config,
    store,
    hub,
    resources,
    documents,
    jobs: createJobControl({ config, redis, queues, resources, documents, store, stuck: stuckSettings }),
    notifications: createNotificationStore(redis, { keyPrefix: config.keyPrefix, ...config.notifications }),
    presence,
    rooms,
    verifyToken: verify,
    revocations,
    serviceKeys: createServiceKeyStore(redis, config.keyPrefix),
    sendLimiter: createRateLimiter(redis, {
      keyPrefix: config.keyPrefix,
      name: 'notifications',
      limit: config.notifications.sendLimit.perWindow,
      windowMs: config.notifications.sendLimit.windowMs,
    }),
  };
  const stuck = createStuckWatcher({
    settings: stuckSettings,
    queues,
    notifications: services.notifications,
    onError: (error) => logger.warn({ err: error.message }, 'could not look for stuck jobs'),
  });
  const subscribe = createSubscriptionExecutor((field, transport) => metrics.subscriptionOpened(field, transport));
  const errors = createErrorShaper(logger, (code) => metrics.errors.inc({ code }), config.errorDetails);
  const maxBodyBytes = config.limits.maxRequestBytes;
  const persisted =
    config.persistedOperations === 'only'
      ? createPersistedOperations(
          JSON.parse(readFileSync(new URL('./persisted-operations.json', import.meta.url), 'utf8')) as Record<string, string>,
        )
      : undefined;
  const yoga = createYogaServer({
    schema,
    maxBodyBytes,
    services,
    config,
    verify,
    logger,
    errors,
    persisted,
    graphiqlHeaders: options.devToken ? { Authorization: `Bearer ${options.devToken}` } : undefined,
    onAuthFailure: () => metrics.authFailures.inc({ transport: 'http' }),
    mutationLimiter: createRateLimiter(redis, {
      keyPrefix: config.keyPrefix,
      name: 'mutations',
      limit: config.limits.mutationsPerMinute,
      windowMs: 60_000,
    }),
    onLimitHit: (limit) => metrics.limitsHit.inc({ limit }),
    revocations,
    subscribe,
  });
  const handler = createHttpHandler({
    yoga,
    redis,
    metrics,
    verify,
    page: createLivePage({ devToken: options.devToken }),
    publish: createPublishHandler({
      services,
      config,
      idempotency: createIdempotencyStore(redis, {
        keyPrefix: config.keyPrefix,
        ttlSeconds: config.publish.idempotencyTtlSeconds,
        pendingMs: PUBLISH_PENDING_MS,
      }),
      limiter: createRateLimiter(redis, {
        keyPrefix: config.keyPrefix,
        name: 'publish',
        limit: config.publish.requestsPerMinute,
        windowMs: 60_000,
      }),
      metrics,
      logger,
    }),
    maxBodyBytes,
    drain: config.limits.refusedBodyDrain,
  });
  const server = createServer((req, res) => {
    handler(req, res).catch((error: Error) => {
      logger.error({ err: error.message }, 'request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  const websocket = attachWebSocketServer({
    server,
    yoga,
    verify,
    logger,
    metrics,
    errors,
    presence,
    revocations,
    config,
    subscribe,
    persisted,
  });

  return {
    services,
    metrics,
    /** Listens on config.port (0 picks a free one) and resolves with the URL to reach. */
    async start(): Promise<{ url: string; port: number }> {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: config.port, host: config.host, backlog: config.listenBacklog }, () => resolve());
      });
      presence.start();
      revocations.start();
      stuck.start();
      const { port } = server.address() as AddressInfo;
      labelInstance(metrics.registry, config.instance, port);
      const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
      return { url: `http://${host}:${port}`, port };
    },
    async stop(): Promise<void> {
      await websocket.close();
      revocations.stop();
      stuck.stop();
      await presence.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await queues.close();
      connections.disconnect();
    },
  };
}

export type App = ReturnType<typeof buildApp>;
