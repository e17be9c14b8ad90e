import { z } from 'zod';

const int = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const schema = z
  .object({
    PORT: int(0, 65535).default(4000),
    HOST: z.string().min(1).optional(),
    REDIS_URL: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .optional(),
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    KEY_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'letters, digits and _ : . - only, at most 64')
      .default('herald:'),
    HISTORY_LIMIT: int(1, 100_000).default(100),
    REPLAY_ON_CONNECT: int(0, 100_000).default(10),
    UPDATE_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    MAX_CONTENT_BYTES: int(1, 100 * 1024 * 1024).default(5 * 1024 * 1024),
    MAX_UPLOAD_BYTES: int(1, 100 * 1024 * 1024).default(10 * 1024 * 1024),
    MAX_QUESTION_LENGTH: int(1, 100_000).default(2_000),
    MAX_NAME_LENGTH: int(1, 10_000).default(255),
    MAX_FILE_IDS: int(1, 10_000).default(100),
    MAX_QUERY_DEPTH: int(2, 100).default(12),
    MAX_QUERY_ALIASES: int(1, 1_000).default(15),
    MAX_QUERY_TOKENS: int(50, 100_000).default(2_000),
    MAX_QUERY_COST: int(100, 1_000_000).default(5_000),
    SUBSCRIBER_QUEUE_LIMIT: int(10, 1_000_000).default(1_000),
    MAX_CONNECTIONS_PER_USER: int(1, 1_000_000).default(32),
    MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 100_000).default(100),
    MUTATIONS_PER_MINUTE: int(1, 1_000_000).default(600),
    WS_KEEPALIVE_MS: int(100, 3_600_000).default(12_000),
    REVOCATION_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    JOB_ATTEMPTS: int(1, 100).default(3),
    JOB_BACKOFF_MS: int(0, 3_600_000).default(1_000),
    JOB_TIMEOUT_MS: int(100, 24 * 3_600_000).default(5 * 60_000),
    WORKER_CONCURRENCY: int(1, 1_000).default(4),
    WORKER_LOCK_MS: int(1_000, 3_600_000).default(30_000),
    WORKER_STALLED_INTERVAL_MS: int(500, 3_600_000).default(30_000),
    CHUNK_CHARS: int(100, 1_000_000).default(2_000),
    CLASSIFY_BATCH: int(1, 10_000).default(25),
    TOKEN_FLUSH_TOKENS: int(1, 10_000).default(8),
    TOKEN_FLUSH_MS: int(1, 60_000).default(50),
    NOTIFICATION_RETENTION_COUNT: int(1, 100_000).default(1_000),
    NOTIFICATION_RETENTION_DAYS: int(1, 3_650).default(30),
    PRESENCE_HEARTBEAT_MS: int(100, 3_600_000).default(5_000),
    PRESENCE_TTL_MS: int(300, 3 * 3_600_000).default(15_000),
  })
  .superRefine((env, ctx) => {
    if (env.REPLAY_ON_CONNECT > env.HISTORY_LIMIT) {
      ctx.addIssue({
        code: 'custom',
        path: ['REPLAY_ON_CONNECT'],
        message: `must not exceed HISTORY_LIMIT (${env.HISTORY_LIMIT})`,
      });
    }
    if (env.PRESENCE_TTL_MS < 2 * env.PRESENCE_HEARTBEAT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['PRESENCE_TTL_MS'],
        message: `must be at least twice PRESENCE_HEARTBEAT_MS (${env.PRESENCE_HEARTBEAT_MS}), or one late heartbeat drops a live instance`,
      });
    }
  });

/** Room around the largest content for the rest of a request: query, variables, multipart headers. */
const REQUEST_OVERHEAD_BYTES = 64 * 1024;

/** Which process reads the configuration: dev fills in an embedded Redis and a generated secret. */
export type Mode = 'dev' | 'production';

/** Everything Herald can be configured with, validated once at start-up. */
export interface Config {
  mode: Mode;
  port: number;
  host: string;
  redisUrl: string;
  jwtSecret: string;
  keyPrefix: string;
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
     * WebSocket connections one user may have open over every instance (MAX_CONNECTIONS_PER_USER,
     * default 32); the next is closed with 4429. SSE streams are requests, not connections, and don't count.
     */
    maxConnectionsPerUser: number;
    /** Subscriptions one WebSocket may run at once (MAX_SUBSCRIPTIONS_PER_CONNECTION, default 100); the next fails with RATE_LIMITED. */
    maxSubscriptionsPerConnection: number;
    /**
     * Mutations one user may run per clock minute, over every transport and instance
     * (MUTATIONS_PER_MINUTE, default 600); the rest of that minute's fail with RATE_LIMITED.
     */
    mutationsPerMinute: number;
  };
  websocket: {
    /** Server ping interval (WS_KEEPALIVE_MS, default 12 s); a socket that has not answered the previous ping is dropped. */
    keepAliveMs: number;
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
    timeoutMs: number;
    concurrency: number;
    /** How long a worker's lock on a job lasts without renewal: a crashed worker's jobs are free after it. */
    lockMs: number;
    /** How often workers look for jobs whose worker died, and hand them to another. */
    stalledIntervalMs: number;
    chunkChars: number;
    classifyBatch: number;
    tokenFlushTokens: number;
    tokenFlushMs: number;
  };
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

/**
 * Parses the environment. REDIS_URL is required, and JWT_SECRET for the API; `npm run dev`
 * passes both in after starting its own Redis and generating a secret.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, options: LoadOptions = {}): Config {
  const { mode = 'production', role = 'api' } = options;
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`);
  if (parsed.success && !parsed.data.REDIS_URL) problems.push('REDIS_URL: required (for example redis://127.0.0.1:6379)');
  if (parsed.success && role === 'api' && !parsed.data.JWT_SECRET) problems.push('JWT_SECRET: required (at least 32 characters)');
  if (!parsed.success || problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return {
    mode,
    port: e.PORT,
    host: e.HOST ?? (mode === 'dev' ? '127.0.0.1' : '0.0.0.0'),
    redisUrl: e.REDIS_URL!,
    jwtSecret: e.JWT_SECRET ?? '',
    keyPrefix: e.KEY_PREFIX,
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
      maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
      mutationsPerMinute: e.MUTATIONS_PER_MINUTE,
    },
    websocket: {
      keepAliveMs: e.WS_KEEPALIVE_MS,
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
      timeoutMs: e.JOB_TIMEOUT_MS,
      concurrency: e.WORKER_CONCURRENCY,
      lockMs: e.WORKER_LOCK_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      chunkChars: e.CHUNK_CHARS,
      classifyBatch: e.CLASSIFY_BATCH,
      tokenFlushTokens: e.TOKEN_FLUSH_TOKENS,
      tokenFlushMs: e.TOKEN_FLUSH_MS,
    },
  };
}
