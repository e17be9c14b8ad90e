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

const schema = z
  .object({
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
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    KEY_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'letters, digits and _ : . - only, at most 64')
      .default('herald:'),
    HISTORY_LIMIT: int(1, 100_000).default(100),
    REPLAY_ON_CONNECT: int(0, 100_000).default(10),
    UPDATE_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    HERALD_INSTANCE: z
      .string()
      .regex(/^[A-Za-z0-9_:./@-]{1,128}$/, 'letters, digits and _ : . / @ - only, at most 128')
      .optional(),
    WORKER_METRICS_PORT: int(0, 65535).optional(),
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
    PRESENCE_HEARTBEAT_MS: int(100, 3_600_000).default(5_000),
    PRESENCE_TTL_MS: int(300, 3 * 3_600_000).default(15_000),
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
    if (env.REDIS_PASSWORD !== undefined && env.REDIS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_PASSWORD'],
        message: 'not with REDIS_URL: put it in the URL (redis://:password@host:6379)',
      });
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
export type RedisSettings =
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
    };

/** Whether the environment says where Redis is; `npm run dev` starts its own when it does not. */
export function hasRedisSettings(env: Partial<Record<(typeof REDIS_MODE_VARIABLES)[number], unknown>>): boolean {
  return REDIS_MODE_VARIABLES.some((name) => Boolean(env[name]));
}

/** Everything Herald can be configured with, validated once at start-up. */
export interface Config {
  mode: Mode;
  port: number;
  host: string;
  /**
   * Connections the kernel may hold accepted but not yet taken by the process (LISTEN_BACKLOG; the
   * kernel caps it at net.core.somaxconn). Node's default, 511, overflows in a reconnect storm of
   * thousands of clients: their handshakes are reset.
   */
  listenBacklog: number;
  redis: RedisSettings;
  jwtSecret: string;
  keyPrefix: string;
  /**
   * The `instance` label on every metric series (HERALD_INSTANCE); by default the host name and
   * the port /metrics is served on.
   */
  instance: string | null;
  logLevel: z.infer<typeof schema>['LOG_LEVEL'];
  updates: {
    historyLimit: number;
    replayOnConnect: number;
    ttlSeconds: number;
    /** Updates a subscriber may have waiting before it is told to resume from its cursor. */
    subscriberQueueLimit: number;
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
  /** Workers verify no tokens, so only the API needs JWT_SECRET. */
  role?: 'api' | 'worker';
}

/** The one Redis mode the (validated) environment chose. */
function redisSettings(e: z.infer<typeof schema>): RedisSettings {
  const password = e.REDIS_PASSWORD;
  if (e.REDIS_SENTINELS) {
    return {
      mode: 'sentinel',
      sentinels: e.REDIS_SENTINELS,
      masterName: e.REDIS_SENTINEL_MASTER!,
      password,
      sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    };
  }
  if (e.REDIS_CLUSTER_NODES) {
    return { mode: 'cluster', nodes: e.REDIS_CLUSTER_NODES, password, failoverWaitMs: e.REDIS_FAILOVER_WAIT_MS };
  }
  return { mode: 'single', url: e.REDIS_URL! };
}

/**
 * Parses the environment. Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) is required,
 * and JWT_SECRET for the API; `npm run dev` passes both in after starting its own Redis and
 * generating a secret.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, options: LoadOptions = {}): Config {
  const { mode = 'production', role = 'api' } = options;
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
  if (parsed.success && role === 'api' && !parsed.data.JWT_SECRET) problems.push('JWT_SECRET: required (at least 32 characters)');
  if (!parsed.success || problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return {
    mode,
    port: e.PORT,
    host: e.HOST ?? (mode === 'dev' ? '127.0.0.1' : '0.0.0.0'),
    listenBacklog: e.LISTEN_BACKLOG,
    redis: redisSettings(e),
    jwtSecret: e.JWT_SECRET ?? '',
    keyPrefix: e.KEY_PREFIX,
    instance: e.HERALD_INSTANCE ?? null,
    logLevel: e.LOG_LEVEL,
    updates: {
      historyLimit: e.HISTORY_LIMIT,
      replayOnConnect: e.REPLAY_ON_CONNECT,
      ttlSeconds: e.UPDATE_TTL_SECONDS,
      subscriberQueueLimit: e.SUBSCRIBER_QUEUE_LIMIT,
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
