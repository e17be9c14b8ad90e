import { readFileSync } from 'node:fs';
import { z } from 'zod';

const int = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

/** The kinds of job Herald's workers run, each in its own BullMQ queue (src/jobs/queues.ts). */
export const JOB_KINDS = ['file', 'query'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** The variables that each choose how Herald reaches Redis; exactly one must be set. */
const REDIS_MODE_VARIABLES = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const;

/** A host and port of a Redis Sentinel or Cluster node. */
export interface RedisAddress {
  host: string;
  port: number;
}

/** `host:port`, `[ipv6]:port`. */
const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** A comma-separated list of host:port; each bad entry is named in the message. */
const addressList = (example: string) =>
  z.string().transform((value, ctx) => {
    const addresses: RedisAddress[] = [];
    for (const entry of value.split(',').map((part) => part.trim())) {
      const [, bracketed, plain, portText] = ADDRESS.exec(entry) ?? [];
      const host = bracketed ?? plain;
      const port = Number(portText);
      if (host === undefined || port < 1 || port > 65535) {
        ctx.addIssue({
          code: 'custom',
          message: `${JSON.stringify(entry)} is not host:port (a comma-separated list, e.g. ${example})`,
        });
        return z.NEVER;
      }
      addresses.push({ host, port });
    }
    return addresses;
  });

/** A PEM file, read at start-up so that a missing or unreadable one stops Herald with its path and reason. */
const pemFile = z.string().transform((path, ctx) => {
  try {
    const pem = readFileSync(path, 'utf8');
    if (pem.includes('-----BEGIN ')) return pem;
    ctx.addIssue({ code: 'custom', message: `${path} is not a PEM file (no -----BEGIN line)` });
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(error as Error).message}` });
  }
  return z.NEVER;
});

const schema = z
  .object({
    GRAPHIQL: z.stringbool({ error: 'must be true or false' }).optional(),
    INTROSPECTION: z.stringbool({ error: 'must be true or false' }).optional(),
    PERSISTED_OPERATIONS: z.enum(['off', 'only'], { error: 'must be off or only' }).default('off'),
    PORT: int(0, 65535).default(4000),
    HOST: z.string().min(1).optional(),
    LISTEN_BACKLOG: int(1, 65535).default(4096),
    REDIS_URL: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .optional(),
    REDIS_SENTINELS: addressList('10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379').optional(),
    REDIS_SENTINEL_MASTER: z.string().regex(/^\S+$/, 'must be one word: the master name the sentinels monitor').optional(),
    REDIS_SENTINEL_PASSWORD: z.string().optional(),
    REDIS_CLUSTER_NODES: addressList('10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379').optional(),
    REDIS_PASSWORD: z.string().optional(),
    REDIS_FAILOVER_WAIT_MS: int(0, 600_000).default(20_000),
    REDIS_TLS: z.stringbool({ error: 'must be true or false' }).optional(),
    REDIS_TLS_CA_FILE: pemFile.optional(),
    REDIS_TLS_CERT_FILE: pemFile.optional(),
    REDIS_TLS_KEY_FILE: pemFile.optional(),
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    JWT_JWKS_URL: z
      .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL (the provider's jwks_uri)" })
      .optional(),
    JWT_ISSUER: z.string().min(1).optional(),
    JWT_AUDIENCE: z
      .string()
      .transform((value) => value.split(',').map((part) => part.trim()))
      .refine((list) => list.every(Boolean), 'a comma-separated list of audiences, none empty')
      .optional(),
    JWT_JWKS_TIMEOUT_MS: int(100, 60_000).default(5_000),
    JWT_JWKS_COOLDOWN_MS: int(0, 3_600_000).default(30_000),
    JWT_ROLES_CLAIM: z.string().min(1).default('roles'),
    JWT_PROJECTS_CLAIM: z.string().min(1).default('projects'),
    KEY_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'letters, digits and _ : . - only, at most 64')
      .default('herald:'),
    HISTORY_LIMIT: int(1, 100_000).default(100),
    REPLAY_ON_CONNECT: int(0, 100_000).default(10),
    UPDATE_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    APPEND_WAIT_REPLICAS: int(0, 100).default(0),
    APPEND_WAIT_TIMEOUT_MS: int(1, 60_000).default(500),
    HERALD_INSTANCE: z
      .string()
      .regex(/^[A-Za-z0-9_:./@-]{1,128}$/, 'letters, digits and _ : . / @ - only, at most 128')
      .optional(),
    WORKER_METRICS_PORT: int(0, 65535).optional(),
    OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    OTEL_SERVICE_NAME: z
      .string()
      .regex(/^\S{1,128}$/, 'must be one word, at most 128 characters')
      .optional(),
    OTEL_BSP_SCHEDULE_DELAY: int(0, 3_600_000).default(5_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    MAX_CONTENT_BYTES: int(1, 100 * 1024 * 1024).default(5 * 1024 * 1024),
    MAX_UPLOAD_BYTES: int(1, 100 * 1024 * 1024).default(10 * 1024 * 1024),
    REFUSED_BODY_DRAIN_BYTES: int(0, 1024 * 1024 * 1024).default(64 * 1024 * 1024),
    REFUSED_BODY_DRAIN_MS: int(0, 600_000).default(30_000),
    MAX_QUESTION_LENGTH: int(1, 100_000).default(2_000),
    MAX_NAME_LENGTH: int(1, 10_000).default(255),
    MAX_FILE_IDS: int(1, 10_000).default(100),
    MAX_QUERY_DEPTH: int(2, 100).default(12),
    MAX_QUERY_ALIASES: int(1, 1_000).default(15),
    MAX_QUERY_TOKENS: int(50, 100_000).default(2_000),
    MAX_QUERY_COST: int(100, 1_000_000).default(5_000),
    SUBSCRIBER_QUEUE_LIMIT: int(10, 1_000_000).default(1_000),
    MAX_CONNECTIONS_PER_USER: int(1, 1_000_000).default(32),
    MAX_CONNECTIONS: int(0, 10_000_000).default(0),
    MAX_CONNECTIONS_PER_IP: int(0, 10_000_000).default(0),
    TRUST_PROXY_HOPS: int(0, 16).default(0),
    MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 100_000).default(100),
    MUTATIONS_PER_MINUTE: int(1, 1_000_000).default(600),
    WS_KEEPALIVE_MS: int(100, 3_600_000).default(12_000),
    WS_MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024),
    WS_SLOW_CONSUMER_MS: int(100, 3_600_000).default(10_000),
    WS_IDLE_TIMEOUT_MS: int(0, 7 * 24 * 3_600_000)
      .refine((ms) => ms === 0 || ms >= 1_000, 'must be 0 (off) or at least 1000')
      .default(0),
    WS_PERMESSAGE_DEFLATE: z.stringbool({ error: 'must be true or false' }).default(false),
    REVOCATION_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    JOB_ATTEMPTS: int(1, 100).default(3),
    JOB_BACKOFF_MS: int(0, 3_600_000).default(1_000),
    JOB_TIMEOUT_MS: int(100, 24 * 3_600_000).default(5 * 60_000),
    JOB_SOFT_TIMEOUT_MS_FILE: int(100, 24 * 3_600_000).optional(),
    JOB_SOFT_TIMEOUT_MS_QUERY: int(100, 24 * 3_600_000).optional(),
    JOB_HARD_TIMEOUT_MS_FILE: int(200, 25 * 3_600_000).optional(),
    JOB_HARD_TIMEOUT_MS_QUERY: int(200, 25 * 3_600_000).optional(),
    JOB_STUCK_AFTER_MS: int(1_000, 7 * 24 * 3_600_000).default(60_000),
    JOB_HEARTBEAT_TIMEOUT_MS: int(1_000, 3_600_000).default(30_000),
    WORKER_CONCURRENCY: int(1, 1_000).default(4),
    WORKER_LOCK_MS: int(1_000, 3_600_000).default(30_000),
    WORKER_STALLED_INTERVAL_MS: int(500, 3_600_000).default(30_000),
    JOB_QUEUE_SHARDS: int(1, 64).default(1),
    WORKER_QUEUES: z
      .string()
      .transform((value, ctx) => {
        const kinds = value.split(',').map((part) => part.trim());
        const unknown = kinds.filter((kind) => !(JOB_KINDS as readonly string[]).includes(kind));
        if (unknown.length > 0 || kinds.length === 0) {
          ctx.addIssue({
            code: 'custom',
            message: `${unknown.map((kind) => JSON.stringify(kind)).join(', ')} is not a job kind: a comma-separated list of ${JOB_KINDS.join(', ')}`,
          });
          return z.NEVER;
        }
        return [...new Set(kinds as JobKind[])];
      })
      .optional(),
    CHUNK_CHARS: int(100, 1_000_000).default(2_000),
    CLASSIFY_BATCH: int(1, 10_000).default(25),
    PROGRESS_UPDATES: int(1, 100_000).default(50),
    TOKEN_FLUSH_TOKENS: int(1, 10_000).default(8),
    TOKEN_FLUSH_MS: int(1, 60_000).default(50),
    NOTIFICATION_RETENTION_COUNT: int(1, 100_000).default(1_000),
    NOTIFICATION_RETENTION_DAYS: int(1, 3_650).default(30),
    NOTIFY_RATE_LIMIT: int(1, 1_000_000).default(60),
    NOTIFY_RATE_WINDOW_MS: int(100, 24 * 3_600_000).default(60_000),
    PRESENCE_HEARTBEAT_MS: int(100, 3_600_000).default(5_000),
    PRESENCE_TTL_MS: int(300, 3 * 3_600_000).default(15_000),
    PUBLISH_MAX_BODY_BYTES: int(1_024, 16 * 1024 * 1024).default(256 * 1024),
    PUBLISH_REQUESTS_PER_MINUTE: int(1, 1_000_000).default(1_200),
    IDEMPOTENCY_TTL_SECONDS: int(60, 30 * 24 * 3600).default(24 * 3600),
  })
  .superRefine((env, ctx) => {
    const modes = REDIS_MODE_VARIABLES.filter((name) => env[name] !== undefined);
    const [, second] = modes;
    if (second !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [second],
        message: `set only one of ${REDIS_MODE_VARIABLES.join(', ')}, not ${modes.join(' and ')}`,
      });
    }
    if (env.REDIS_SENTINELS && !env.REDIS_SENTINEL_MASTER) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_SENTINEL_MASTER'],
        message: 'required with REDIS_SENTINELS: the master name the sentinels monitor',
      });
    }
    for (const name of ['REDIS_SENTINEL_MASTER', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (env[name] !== undefined && !env.REDIS_SENTINELS)
        ctx.addIssue({ code: 'custom', path: [name], message: 'only with REDIS_SENTINELS' });
    }
    if (env.REDIS_TLS !== undefined && env.REDIS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_TLS'],
        message: 'not with REDIS_URL: a rediss:// URL turns TLS on (REDIS_TLS is for Sentinel and Cluster)',
      });
    }
    const tls = env.REDIS_TLS === true || env.REDIS_URL?.startsWith('rediss://') === true;
    for (const name of ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'] as const) {
      if (env[name] !== undefined && !tls)
        ctx.addIssue({ code: 'custom', path: [name], message: 'only with TLS: a rediss:// REDIS_URL, or REDIS_TLS=true' });
    }
    if ((env.REDIS_TLS_CERT_FILE === undefined) !== (env.REDIS_TLS_KEY_FILE === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.REDIS_TLS_CERT_FILE === undefined ? 'REDIS_TLS_CERT_FILE' : 'REDIS_TLS_KEY_FILE'],
        message: 'REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: the client certificate and its key',
      });
    }
    if (env.REDIS_PASSWORD !== undefined && env.REDIS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_PASSWORD'],
        message: 'not with REDIS_URL: put it in the URL (redis://:password@host:6379)',
      });
    }
    for (const name of ['JWT_ISSUER', 'JWT_AUDIENCE'] as const) {
      if (env.JWT_JWKS_URL && env[name] === undefined)
        ctx.addIssue({ code: 'custom', path: [name], message: 'required with JWT_JWKS_URL: tokens are checked against it' });
      if (!env.JWT_JWKS_URL && env[name] !== undefined)
        ctx.addIssue({ code: 'custom', path: [name], message: 'only with JWT_JWKS_URL' });
    }
    if (env.REPLAY_ON_CONNECT > env.HISTORY_LIMIT) {
      ctx.addIssue({
        code: 'custom',
        path: ['REPLAY_ON_CONNECT'],
        message: `must not exceed HISTORY_LIMIT (${env.HISTORY_LIMIT})`,
      });
    }
    if (env.WORKER_METRICS_PORT !== undefined && env.WORKER_METRICS_PORT !== 0 && env.WORKER_METRICS_PORT === env.PORT) {
      ctx.addIssue({
        code: 'custom',
        path: ['WORKER_METRICS_PORT'],
        message: `must differ from PORT (${env.PORT}), the API's port (npm run dev runs both in one process)`,
      });
    }
    for (const kind of JOB_KINDS) {
      const { softMs, hardMs } = jobTimeouts(env, kind);
      if (hardMs <= softMs) {
        ctx.addIssue({
          code: 'custom',
          path: [`JOB_HARD_TIMEOUT_MS_${kind.toUpperCase()}`],
          message: `must be above the soft timeout of ${kind} jobs (${softMs} ms), or a job gets no time to stop by itself`,
        });
      }
    }
    if (env.PRESENCE_TTL_MS < 2 * env.PRESENCE_HEARTBEAT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['PRESENCE_TTL_MS'],
        message: `must be at least twice PRESENCE_HEARTBEAT_MS (${env.PRESENCE_HEARTBEAT_MS}), or one late heartbeat drops a live instance`,
      });
    }
  });

/**
 * JWT_SECRETs anyone can read (the test suite's): with one of these, anyone can sign tokens, so
 * production refuses them.
 */
const PUBLISHED_SECRETS = ['test-secret-that-is-long-enough-for-hs256'];

/** Time a job of any kind gets, by default, between its soft and its hard timeout to stop by itself. */
const HARD_TIMEOUT_GRACE_MS = 30_000;

/** A kind's timeouts: JOB_SOFT_TIMEOUT_MS_<KIND> (default JOB_TIMEOUT_MS), JOB_HARD_TIMEOUT_MS_<KIND> (default 30 s later). */
function jobTimeouts(
  env: { JOB_TIMEOUT_MS: number } & { [K in `JOB_${'SOFT' | 'HARD'}_TIMEOUT_MS_${Uppercase<JobKind>}`]?: number | undefined },
  kind: JobKind,
): JobTimeouts {
  const upper = kind.toUpperCase() as Uppercase<JobKind>;
  const softMs = env[`JOB_SOFT_TIMEOUT_MS_${upper}`] ?? env.JOB_TIMEOUT_MS;
  return { softMs, hardMs: env[`JOB_HARD_TIMEOUT_MS_${upper}`] ?? softMs + HARD_TIMEOUT_GRACE_MS };
}

/** Room around the largest content for the rest of a request: query, variables, multipart headers. */
const REQUEST_OVERHEAD_BYTES = 64 * 1024;

/** Which process reads the configuration: dev fills in an embedded Redis and a generated secret. */
export type Mode = 'dev' | 'production';

/**
 * Where Redis is: one server (or anything behind one URL), a Sentinel-monitored primary that
 * clients follow through failovers, or a Cluster. Every connection of a process uses the same.
 */
export type RedisSettings = (
  | { mode: 'single'; url: string }
  | {
      mode: 'sentinel';
      sentinels: RedisAddress[];
      /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`). */
      masterName: string;
      password?: string;
      sentinelPassword?: string;
    }
  | {
      mode: 'cluster';
      nodes: RedisAddress[];
      password?: string;
      /** How long a command rides out a failover (CLUSTERDOWN, its primary's connection lost) before it fails. */
      failoverWaitMs: number;
    }
) & {
  /**
   * TLS to every Redis node (and to the sentinels), or null for plain TCP: on with a rediss://
   * URL or REDIS_TLS=true. PEM contents: the CA to trust instead of the system's, and the client
   * certificate Redis asks for when it authenticates clients (its default, `tls-auth-clients yes`).
   */
  tls: RedisTls | null;
};

export interface RedisTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Whether the environment says where Redis is; `npm run dev` starts its own when it does not. */
export function hasRedisSettings(env: Partial<Record<(typeof REDIS_MODE_VARIABLES)[number], unknown>>): boolean {
  return REDIS_MODE_VARIABLES.some((name) => Boolean(env[name]));
}

/** An OpenID Connect provider whose tokens the API accepts (JWT_JWKS_URL and the settings beside it). */
export interface ProviderSettings {
  /** Where the provider publishes its signing keys (its `jwks_uri`); fetched on first use, cached, and fetched again for an unknown `kid`. */
  jwksUrl: string;
  /** The `iss` every token must carry (JWT_ISSUER). */
  issuer: string;
  /** Audiences a token's `aud` must include one of (JWT_AUDIENCE, comma-separated): this API's client id at the provider. */
  audience: string[];
  /** How long a fetch of the keys may take (JWT_JWKS_TIMEOUT_MS, default 5 s) before the token is refused (401, 4401). */
  timeoutMs: number;
  /**
   * How long after a fetch an unknown `kid` is refused without fetching again (JWT_JWKS_COOLDOWN_MS,
   * default 30 s), so tokens with made-up key ids cannot make Herald hammer the provider.
   */
  cooldownMs: number;
  /** Where the roles are (JWT_ROLES_CLAIM, default `roles`): a claim name or a dotted path, e.g. `realm_access.roles`. */
  rolesClaim: string;
  /** Where the project ids are (JWT_PROJECTS_CLAIM, default `projects`), as rolesClaim. */
  projectsClaim: string;
}

/** Where spans go (OTLP over HTTP), when tracing is configured; see src/tracing.ts. */
export interface TracingSettings {
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces, as the OTLP spec says. */
  tracesUrl: string;
  /** OTEL_SERVICE_NAME; null lets each process name itself (herald-api, herald-worker, herald-dev). */
  serviceName: string | null;
  /** OTEL_BSP_SCHEDULE_DELAY: milliseconds between exports of batched spans (default 5000). */
  scheduleDelayMs: number;
}

/** Everything Herald can be configured with, validated once at start-up. */
export interface Config {
  mode: Mode;
  /**
   * NODE_ENV=production: GraphiQL and introspection are off unless enabled, no dev token is made,
   * unexpected errors reach clients without details, and development secrets are refused.
   */
  production: boolean;
  /** Serve GraphiQL on GET /graphql (GRAPHIQL; default on, off in production). */
  graphiql: boolean;
  /** Answer introspection (`__schema`, `__type`) on every transport (INTROSPECTION; default on, off in production). */
  introspection: boolean;
  /**
   * NODE_ENV=development: an unexpected error tells the client its message and stack
   * (`extensions.originalError`). Under any other NODE_ENV the client sees only INTERNAL_SERVER_ERROR.
   */
  errorDetails: boolean;
  /**
   * PERSISTED_OPERATIONS=only runs nothing but the allow-list in src/persisted-operations.json
   * (`npm run persisted-operations`), named by hash, on every transport; `off` (the default) runs any document.
   */
  persistedOperations: 'off' | 'only';
  port: number;
  host: string;
  /**
   * Connections the kernel may hold accepted but not yet taken by the process (LISTEN_BACKLOG; the
   * kernel caps it at net.core.somaxconn). Node's default, 511, overflows in a reconnect storm of
   * thousands of clients: their handshakes are reset.
   */
  listenBacklog: number;
  redis: RedisSettings;
  /** The HS256 key (JWT_SECRET); null when only the identity provider's tokens are accepted. */
  jwtSecret: string | null;
  /** The OpenID Connect provider (JWT_JWKS_URL); null when only HS256 tokens are accepted. */
  identityProvider: ProviderSettings | null;
  keyPrefix: string;
  /**
   * The `instance` label on every metric series (HERALD_INSTANCE); by default the host name and
   * the port /metrics is served on.
   */
  instance: string | null;
  logLevel: z.infer<typeof schema>['LOG_LEVEL'];
  /** Null, the default, when no OTLP endpoint is set: no exporter, no spans on the update path. */
  tracing: TracingSettings | null;
  updates: {
    historyLimit: number;
    replayOnConnect: number;
    ttlSeconds: number;
    /** Updates a subscriber may have waiting before it is told to resume from its cursor. */
    subscriberQueueLimit: number;
    /**
     * Replicas every append call waits for (APPEND_WAIT_REPLICAS, 0: none), so an acknowledged
     * update survives a failover; see docs/redis-ha.md.
     */
    appendWaitReplicas: number;
    /** How long one WAIT for them takes at most (APPEND_WAIT_TIMEOUT_MS) before the call is re-sent. */
    appendWaitTimeoutMs: number;
    /** How long an append keeps re-sending before it fails (REDIS_FAILOVER_WAIT_MS). */
    appendWaitWithinMs: number;
  };
  limits: {
    maxContentBytes: number;
    maxUploadBytes: number;
    maxQuestionLength: number;
    maxNameLength: number;
    maxFileIds: number;
    maxQueryDepth: number;
    maxQueryAliases: number;
    maxQueryTokens: number;
    maxQueryCost: number;
    /**
     * Largest HTTP body and largest WebSocket message: the larger of MAX_UPLOAD_BYTES and
     * MAX_CONTENT_BYTES plus 64 KiB, because an upload or inline content is the largest legitimate
     * request on either transport. A bigger body gets 413; a bigger message closes the socket (1009).
     */
    maxRequestBytes: number;
    /**
     * How much of a body refused with 413 is read and discarded before the answer and the close
     * (REFUSED_BODY_DRAIN_BYTES, default 64 MiB; REFUSED_BODY_DRAIN_MS, default 30 s, nginx's
     * lingering_time), so a client still sending reads the 413 instead of a reset. Past either,
     * the socket is closed regardless.
     */
    refusedBodyDrain: { maxBytes: number; maxMs: number };
    /**
     * WebSocket connections one user may have open over every instance (MAX_CONNECTIONS_PER_USER,
     * default 32); the next is closed with 4429. SSE streams are requests, not connections, and don't count.
     */
    maxConnectionsPerUser: number;
    /**
     * WebSockets this instance holds at once (MAX_CONNECTIONS, default 0: no cap); the next is closed
     * with 1013, which graphql-ws clients retry, so a load balancer can place them elsewhere.
     */
    maxConnections: number;
    /** WebSockets this instance holds from one client address (MAX_CONNECTIONS_PER_IP, default 0: no cap); the next is closed with 4429. */
    maxConnectionsPerIp: number;
    /**
     * Proxies in front of Herald that append to X-Forwarded-For (TRUST_PROXY_HOPS, default 0): the
     * client address of MAX_CONNECTIONS_PER_IP is the entry the outermost of them added. With 0,
     * the socket's peer, which behind a proxy is the proxy.
     */
    trustedProxies: number;
    /** Subscriptions one WebSocket may run at once (MAX_SUBSCRIPTIONS_PER_CONNECTION, default 100); the next fails with RATE_LIMITED. */
    maxSubscriptionsPerConnection: number;
    /**
     * Mutations one user may run per minute from their first, over every transport and instance
     * (MUTATIONS_PER_MINUTE, default 600); the rest of that minute's fail with RATE_LIMITED.
     */
    mutationsPerMinute: number;
  };
  websocket: {
    /** Server ping interval (WS_KEEPALIVE_MS, default 12 s); a socket that has not answered the previous ping is dropped. */
    keepAliveMs: number;
    /**
     * Unsent data one WebSocket may have queued (WS_MAX_BUFFERED_BYTES, default 1 MiB). Past it
     * the connection's subscriptions pause, and catch up from history once it drains: a slow
     * client costs the server at most this much (plus one update per subscription).
     */
    maxBufferedBytes: number;
    /** How long a connection may stay over maxBufferedBytes (WS_SLOW_CONSUMER_MS, default 10 s) before it is closed with 4413. */
    slowConsumerMs: number;
    /**
     * Offer permessage-deflate (WS_PERMESSAGE_DEFLATE, default off). It shrinks messages of 1 KiB
     * and more (ws' threshold) for clients that accept it, at the cost of CPU and of a zlib context
     * per connection (tens of KB each); off, a fan-out's frames go out as serialized, once per result.
     */
    perMessageDeflate: boolean;
    /**
     * Close a WebSocket that has had no subscription for this long (WS_IDLE_TIMEOUT_MS, default 0:
     * never) with 4408, counting from its acknowledgement or its last subscription's end: a socket
     * that watches nothing holds a place under every cap for no one.
     */
    idleTimeoutMs: number;
  };
  auth: {
    /**
     * How long a revocation is kept (REVOCATION_TTL_SECONDS, default 7 days). Make it at least the
     * longest token lifetime: a revoked token that outlives it would work again.
     */
    revocationTtlSeconds: number;
  };
  notifications: {
    /** Notifications kept per target (a user, role, project, or everyone). */
    retentionCount: number;
    /** Days a notification is kept, read or not. */
    retentionDays: number;
    /**
     * sendNotification calls one user may make per window, admins included, counted in Redis over
     * every instance (NOTIFY_RATE_LIMIT, default 60, per NOTIFY_RATE_WINDOW_MS, default 60 s); the
     * rest of the window's fail with RATE_LIMITED. Producers over HTTP have PUBLISH_REQUESTS_PER_MINUTE.
     */
    sendLimit: { perWindow: number; windowMs: number };
  };
  /** The HTTP publish endpoint for services (`/v1/...`, service keys). */
  publish: {
    /** Largest JSON body of one publish request (PUBLISH_MAX_BODY_BYTES, default 256 KiB); a bigger one gets 413. */
    maxBodyBytes: number;
    /**
     * Requests one service key may make per minute from its first, over every instance
     * (PUBLISH_REQUESTS_PER_MINUTE, default 1200); the rest of that minute's get 429 with Retry-After.
     */
    requestsPerMinute: number;
    /**
     * How long the first answer to a request with an `Idempotency-Key` is kept and given again to
     * its retries (IDEMPOTENCY_TTL_SECONDS, default 1 day).
     */
    idempotencyTtlSeconds: number;
  };
  presence: {
    /** How often an API instance re-announces its connected users. */
    heartbeatMs: number;
    /** How long an instance's announcement lasts: one that stops heartbeating disappears after it. */
    ttlMs: number;
  };
  jobs: {
    attempts: number;
    backoffMs: number;
    /** Per kind: when an attempt is asked to stop (its signal aborts) and when it is stopped whatever it does. */
    timeouts: Record<JobKind, JobTimeouts>;
    /** A job waiting this long in a queue no worker consumes is reported stuck (JOB_STUCK_AFTER_MS, default 60 s). */
    stuckAfterMs: number;
    /**
     * A running job whose worker has not refreshed its heartbeat for this long is reported stuck
     * (JOB_HEARTBEAT_TIMEOUT_MS, default 30 s); the worker refreshes it every third of it.
     */
    heartbeatTimeoutMs: number;
    concurrency: number;
    /**
     * Where a worker process serves /metrics and /healthz (WORKER_METRICS_PORT, on HOST); null, the
     * default, serves nothing. 0 picks a free port.
     */
    metricsPort: number | null;
    /** How long a worker's lock on a job lasts without renewal: a crashed worker's jobs are free after it. */
    lockMs: number;
    /** How often workers look for jobs whose worker died, and hand them to another. */
    stalledIntervalMs: number;
    /**
     * How many BullMQ queues each job kind is spread over (JOB_QUEUE_SHARDS, default 1): on a Redis
     * Cluster each queue is one slot, so more shards spread job traffic over more primaries.
     */
    queueShards: number;
    /** The job kinds this worker process runs (WORKER_QUEUES or `--queues`; default all), so a kind can have its own machines. */
    workerKinds: JobKind[];
    chunkChars: number;
    classifyBatch: number;
    /**
     * Most extraction_progress, and most sentence_classification, updates of one document (PROGRESS_UPDATES,
     * default 50): a watcher sees a bounded stream however large the document.
     */
    progressUpdates: number;
    tokenFlushTokens: number;
    tokenFlushMs: number;
  };
}

/**
 * How long an attempt of one kind of job may run. At `softMs` its AbortSignal fires and it fails
 * with a "timed out" reason once it stops; at `hardMs` its thread is terminated, so a job that
 * never looks at its signal cannot hold a worker slot (or its BullMQ lock) for ever.
 */
export interface JobTimeouts {
  softMs: number;
  hardMs: number;
}

/** Thrown with every problem of the environment at once, so an operator fixes them in one go. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  mode?: Mode;
  /** Workers verify no tokens, so only the API needs JWT_SECRET or JWT_JWKS_URL. */
  role?: 'api' | 'worker';
  /** Secrets known from development (the one `npm run dev` keeps in .data/): production refuses them. */
  developmentSecrets?: string[];
}

/** The one Redis mode the (validated) environment chose. */
function redisSettings(e: z.infer<typeof schema>): RedisSettings {
  const password = e.REDIS_PASSWORD;
  const on = e.REDIS_TLS === true || e.REDIS_URL?.startsWith('rediss://') === true;
  const tls = on ? { ca: e.REDIS_TLS_CA_FILE, cert: e.REDIS_TLS_CERT_FILE, key: e.REDIS_TLS_KEY_FILE } : null;
  if (e.REDIS_SENTINELS) {
    return {
      mode: 'sentinel',
      sentinels: e.REDIS_SENTINELS,
      masterName: e.REDIS_SENTINEL_MASTER!,
      password,
      sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
      tls,
    };
  }
  if (e.REDIS_CLUSTER_NODES) {
    return { mode: 'cluster', nodes: e.REDIS_CLUSTER_NODES, password, failoverWaitMs: e.REDIS_FAILOVER_WAIT_MS, tls };
  }
  return { mode: 'single', url: e.REDIS_URL!, tls };
}

function tracingSettings(e: z.infer<typeof schema>): TracingSettings | null {
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (e.OTEL_EXPORTER_OTLP_ENDPOINT && `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`);
  if (!tracesUrl) return null;
  return { tracesUrl, serviceName: e.OTEL_SERVICE_NAME ?? null, scheduleDelayMs: e.OTEL_BSP_SCHEDULE_DELAY };
}

/**
 * Parses the environment. Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) is required,
 * and JWT_SECRET or JWT_JWKS_URL for the API; `npm run dev` passes both in after starting its own Redis and
 * generating a secret.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, options: LoadOptions = {}): Config {
  const { mode = 'production', role = 'api', developmentSecrets = [] } = options;
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`);
  if (parsed.success && !hasRedisSettings(parsed.data)) {
    problems.push(
      'REDIS_URL: required (for example redis://127.0.0.1:6379), or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES',
    );
  }
  if (parsed.success && role === 'api' && !parsed.data.JWT_SECRET && !parsed.data.JWT_JWKS_URL) {
    problems.push(
      'JWT_SECRET: required (at least 32 characters), unless JWT_JWKS_URL names an identity provider whose tokens are accepted',
    );
  }
  const production = cleaned.NODE_ENV === 'production';
  const secret = parsed.success ? parsed.data.JWT_SECRET : undefined;
  if (production && role === 'api' && secret && [...PUBLISHED_SECRETS, ...developmentSecrets].includes(secret)) {
    problems.push(
      'JWT_SECRET: a development secret (from npm run dev or the tests), which others can sign tokens with: not with NODE_ENV=production; generate one, e.g. `openssl rand -base64 32`',
    );
  }
  if (!parsed.success || problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return {
    mode,
    production,
    graphiql: e.GRAPHIQL ?? !production,
    introspection: e.INTROSPECTION ?? !production,
    errorDetails: cleaned.NODE_ENV === 'development',
    persistedOperations: e.PERSISTED_OPERATIONS,
    port: e.PORT,
    host: e.HOST ?? (mode === 'dev' ? '127.0.0.1' : '0.0.0.0'),
    listenBacklog: e.LISTEN_BACKLOG,
    redis: redisSettings(e),
    jwtSecret: e.JWT_SECRET ?? null,
    identityProvider: e.JWT_JWKS_URL
      ? {
          jwksUrl: e.JWT_JWKS_URL,
          issuer: e.JWT_ISSUER!,
          audience: e.JWT_AUDIENCE!,
          timeoutMs: e.JWT_JWKS_TIMEOUT_MS,
          cooldownMs: e.JWT_JWKS_COOLDOWN_MS,
          rolesClaim: e.JWT_ROLES_CLAIM,
          projectsClaim: e.JWT_PROJECTS_CLAIM,
        }
      : null,
    keyPrefix: e.KEY_PREFIX,
    instance: e.HERALD_INSTANCE ?? null,
    logLevel: e.LOG_LEVEL,
    tracing: tracingSettings(e),
    updates: {
      historyLimit: e.HISTORY_LIMIT,
      replayOnConnect: e.REPLAY_ON_CONNECT,
      ttlSeconds: e.UPDATE_TTL_SECONDS,
      subscriberQueueLimit: e.SUBSCRIBER_QUEUE_LIMIT,
      appendWaitReplicas: e.APPEND_WAIT_REPLICAS,
      appendWaitTimeoutMs: e.APPEND_WAIT_TIMEOUT_MS,
      appendWaitWithinMs: e.REDIS_FAILOVER_WAIT_MS,
    },
    limits: {
      maxContentBytes: e.MAX_CONTENT_BYTES,
      maxUploadBytes: e.MAX_UPLOAD_BYTES,
      maxQuestionLength: e.MAX_QUESTION_LENGTH,
      maxNameLength: e.MAX_NAME_LENGTH,
      maxFileIds: e.MAX_FILE_IDS,
      maxQueryDepth: e.MAX_QUERY_DEPTH,
      maxQueryAliases: e.MAX_QUERY_ALIASES,
      maxQueryTokens: e.MAX_QUERY_TOKENS,
      maxQueryCost: e.MAX_QUERY_COST,
      maxRequestBytes: Math.max(e.MAX_UPLOAD_BYTES, e.MAX_CONTENT_BYTES) + REQUEST_OVERHEAD_BYTES,
      refusedBodyDrain: { maxBytes: e.REFUSED_BODY_DRAIN_BYTES, maxMs: e.REFUSED_BODY_DRAIN_MS },
      maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      maxConnections: e.MAX_CONNECTIONS,
      maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP,
      trustedProxies: e.TRUST_PROXY_HOPS,
      maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
      mutationsPerMinute: e.MUTATIONS_PER_MINUTE,
    },
    websocket: {
      keepAliveMs: e.WS_KEEPALIVE_MS,
      maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
      slowConsumerMs: e.WS_SLOW_CONSUMER_MS,
      perMessageDeflate: e.WS_PERMESSAGE_DEFLATE,
      idleTimeoutMs: e.WS_IDLE_TIMEOUT_MS,
    },
    auth: {
      revocationTtlSeconds: e.REVOCATION_TTL_SECONDS,
    },
    notifications: {
      retentionCount: e.NOTIFICATION_RETENTION_COUNT,
      retentionDays: e.NOTIFICATION_RETENTION_DAYS,
      sendLimit: { perWindow: e.NOTIFY_RATE_LIMIT, windowMs: e.NOTIFY_RATE_WINDOW_MS },
    },
    publish: {
      maxBodyBytes: e.PUBLISH_MAX_BODY_BYTES,
      requestsPerMinute: e.PUBLISH_REQUESTS_PER_MINUTE,
      idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    },
    presence: {
      heartbeatMs: e.PRESENCE_HEARTBEAT_MS,
      ttlMs: e.PRESENCE_TTL_MS,
    },
    jobs: {
      attempts: e.JOB_ATTEMPTS,
      backoffMs: e.JOB_BACKOFF_MS,
      timeouts: { file: jobTimeouts(e, 'file'), query: jobTimeouts(e, 'query') },
      stuckAfterMs: e.JOB_STUCK_AFTER_MS,
      heartbeatTimeoutMs: e.JOB_HEARTBEAT_TIMEOUT_MS,
      concurrency: e.WORKER_CONCURRENCY,
      metricsPort: e.WORKER_METRICS_PORT ?? null,
      lockMs: e.WORKER_LOCK_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      queueShards: e.JOB_QUEUE_SHARDS,
      workerKinds: e.WORKER_QUEUES ?? [...JOB_KINDS],
      chunkChars: e.CHUNK_CHARS,
      classifyBatch: e.CLASSIFY_BATCH,
      progressUpdates: e.PROGRESS_UPDATES,
      tokenFlushTokens: e.TOKEN_FLUSH_TOKENS,
      tokenFlushMs: e.TOKEN_FLUSH_MS,
    },
  };
}
