import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, hasRedisSettings, loadConfig } from '../../src/config.js';

const base = { REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) };

describe('configuration', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig(base);
    expect(config).toMatchObject({
      port: 4000,
      host: '0.0.0.0',
      listenBacklog: 4096,
      updates: { historyLimit: 100, replayOnConnect: 10 },
    });
    expect(loadConfig(base, { mode: 'dev' }).host).toBe('127.0.0.1');
  });

  it('lists every bad value at once, with a clear message', () => {
    const attempt = () =>
      loadConfig({ PORT: 'eighty', LISTEN_BACKLOG: '0', HISTORY_LIMIT: '0', REDIS_URL: 'http://x', JWT_SECRET: 'short' });
    expect(attempt).toThrow(ConfigError);
    for (const line of [
      'PORT: must be a whole number',
      'LISTEN_BACKLOG: must be at least 1',
      'HISTORY_LIMIT: must be at least 1',
      'REDIS_URL: must start with redis:// or rediss://',
      'JWT_SECRET: must be at least 32 characters',
    ]) {
      expect(attempt).toThrow(line);
    }
  });

  it('waits for no replica by default, and takes APPEND_WAIT_* with REDIS_FAILOVER_WAIT_MS as the limit', () => {
    expect(loadConfig(base).updates).toMatchObject({
      appendWaitReplicas: 0,
      appendWaitTimeoutMs: 500,
      appendWaitWithinMs: 20_000,
    });
    const durable = { ...base, APPEND_WAIT_REPLICAS: '1', APPEND_WAIT_TIMEOUT_MS: '250', REDIS_FAILOVER_WAIT_MS: '5000' };
    expect(loadConfig(durable).updates).toMatchObject({
      appendWaitReplicas: 1,
      appendWaitTimeoutMs: 250,
      appendWaitWithinMs: 5_000,
    });
    const attempt = () => loadConfig({ ...base, APPEND_WAIT_REPLICAS: '-1', APPEND_WAIT_TIMEOUT_MS: '0' });
    expect(attempt).toThrow('APPEND_WAIT_REPLICAS: must be at least 0');
    expect(attempt).toThrow('APPEND_WAIT_TIMEOUT_MS: must be at least 1');
  });

  it('requires REDIS_URL, and JWT_SECRET for the API only', () => {
    expect(() => loadConfig({})).toThrow(/REDIS_URL: required[\s\S]*JWT_SECRET: required/);
    expect(loadConfig({ REDIS_URL: base.REDIS_URL }, { role: 'worker' }).redis).toEqual({
      mode: 'single',
      url: base.REDIS_URL,
      tls: null,
    });
  });

  it('takes an identity provider instead of JWT_SECRET, only with its issuer and audience', () => {
    const provider = { JWT_JWKS_URL: 'https://id.example.com/certs', JWT_ISSUER: 'https://id.example.com', JWT_AUDIENCE: 'a, b' };
    const config = loadConfig({ REDIS_URL: base.REDIS_URL, ...provider, JWT_ROLES_CLAIM: 'realm_access.roles' });
    expect(config.jwtSecret).toBeNull();
    expect(config.identityProvider).toEqual({
      jwksUrl: provider.JWT_JWKS_URL,
      issuer: provider.JWT_ISSUER,
      audience: ['a', 'b'],
      timeoutMs: 5_000,
      cooldownMs: 30_000,
      rolesClaim: 'realm_access.roles',
      projectsClaim: 'projects',
    });
    expect(() => loadConfig({ REDIS_URL: base.REDIS_URL, JWT_JWKS_URL: 'ftp://id.example.com/certs' })).toThrow(
      /JWT_JWKS_URL: must be an http:\/\/ or https:\/\/ URL[\s\S]*JWT_ISSUER: required with JWT_JWKS_URL[\s\S]*JWT_AUDIENCE: required/,
    );
    expect(() => loadConfig({ ...base, JWT_ISSUER: 'x' })).toThrow('JWT_ISSUER: only with JWT_JWKS_URL');
    expect(() => loadConfig({ REDIS_URL: base.REDIS_URL })).toThrow(/JWT_SECRET: required .* unless JWT_JWKS_URL/);
  });

  it('NODE_ENV=production: GraphiQL and introspection off unless enabled, development secrets refused', () => {
    expect(loadConfig(base)).toMatchObject({ production: false, graphiql: true, introspection: true, errorDetails: false });
    expect(loadConfig({ ...base, NODE_ENV: 'development' }).errorDetails).toBe(true);
    const production = { ...base, NODE_ENV: 'production' };
    expect(loadConfig(production)).toMatchObject({ production: true, graphiql: false, introspection: false });
    expect(loadConfig({ ...production, GRAPHIQL: 'true', INTROSPECTION: 'true' })).toMatchObject({
      graphiql: true,
      introspection: true,
    });
    expect(() => loadConfig({ ...production, GRAPHIQL: 'yes please' })).toThrow('GRAPHIQL: must be true or false');
    expect(() => loadConfig(production, { developmentSecrets: [base.JWT_SECRET] })).toThrow(
      /JWT_SECRET: a development secret .* not with NODE_ENV=production/,
    );
    expect(loadConfig(base, { developmentSecrets: [base.JWT_SECRET] }).jwtSecret).toBe(base.JWT_SECRET);
    expect(loadConfig(production, { role: 'worker', developmentSecrets: [base.JWT_SECRET] }).production).toBe(true);
    expect(loadConfig(base).persistedOperations).toBe('off');
    expect(loadConfig({ ...base, PERSISTED_OPERATIONS: 'only' }).persistedOperations).toBe('only');
    expect(() => loadConfig({ ...base, PERSISTED_OPERATIONS: 'yes' })).toThrow('PERSISTED_OPERATIONS: must be off or only');
  });

  describe('Redis: one server, Sentinel or Cluster', () => {
    const secret = { JWT_SECRET: base.JWT_SECRET };

    it('reads Sentinel addresses, the master name and passwords', () => {
      const config = loadConfig({
        ...secret,
        REDIS_SENTINELS: '10.0.0.1:26379, sentinel-2.internal:26380,[::1]:26381',
        REDIS_SENTINEL_MASTER: 'mymaster',
        REDIS_PASSWORD: 'data-secret',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      });
      expect(config.redis).toEqual({
        mode: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: 'sentinel-2.internal', port: 26380 },
          { host: '::1', port: 26381 },
        ],
        masterName: 'mymaster',
        password: 'data-secret',
        sentinelPassword: 'sentinel-secret',
        tls: null,
      });
    });

    it('reads Cluster nodes', () => {
      expect(loadConfig({ ...secret, REDIS_CLUSTER_NODES: '10.0.0.1:6379,10.0.0.2:6379' }).redis).toEqual({
        mode: 'cluster',
        nodes: [
          { host: '10.0.0.1', port: 6379 },
          { host: '10.0.0.2', port: 6379 },
        ],
        failoverWaitMs: 20_000,
        tls: null,
      });
    });

    it('turns TLS on with rediss:// or REDIS_TLS, reading the PEM files at start-up', () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-config-'));
      const ca = join(dir, 'ca.pem');
      writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n');
      writeFileSync(join(dir, 'not.pem'), 'hello');
      expect(loadConfig({ ...secret, REDIS_URL: 'rediss://redis.internal:6380' }).redis.tls).toEqual({});
      expect(loadConfig({ ...secret, REDIS_URL: 'rediss://redis.internal:6380', REDIS_TLS_CA_FILE: ca }).redis.tls).toEqual({
        ca: readFileSync(ca, 'utf8'),
      });
      expect(loadConfig({ ...secret, REDIS_CLUSTER_NODES: '10.0.0.1:6379', REDIS_TLS: 'true' }).redis.tls).toEqual({});
      expect(loadConfig({ ...secret, REDIS_CLUSTER_NODES: '10.0.0.1:6379', REDIS_TLS: 'false' }).redis.tls).toBeNull();
      const refused = (env: Record<string, string>) => () => loadConfig({ ...secret, ...env });
      expect(refused({ REDIS_URL: base.REDIS_URL, REDIS_TLS_CA_FILE: ca })).toThrow(
        'REDIS_TLS_CA_FILE: only with TLS: a rediss:// REDIS_URL, or REDIS_TLS=true',
      );
      expect(refused({ REDIS_URL: base.REDIS_URL, REDIS_TLS: 'true' })).toThrow('REDIS_TLS: not with REDIS_URL');
      expect(refused({ REDIS_URL: 'rediss://r:6380', REDIS_TLS_CA_FILE: join(dir, 'missing.pem') })).toThrow(
        `REDIS_TLS_CA_FILE: cannot read ${join(dir, 'missing.pem')}`,
      );
      expect(refused({ REDIS_URL: 'rediss://r:6380', REDIS_TLS_CA_FILE: join(dir, 'not.pem') })).toThrow('is not a PEM file');
      expect(refused({ REDIS_URL: 'rediss://r:6380', REDIS_TLS_CERT_FILE: ca })).toThrow(
        'REDIS_TLS_KEY_FILE: REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together',
      );
      rmSync(dir, { recursive: true });
    });

    it('takes exactly one mode', () => {
      expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1:6379' })).toThrow(
        'REDIS_CLUSTER_NODES: set only one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES, not REDIS_URL and REDIS_CLUSTER_NODES',
      );
      expect(() => loadConfig(secret)).toThrow(
        'REDIS_URL: required (for example redis://127.0.0.1:6379), or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES',
      );
      // What `npm run dev` asks before it starts a Redis of its own.
      expect(hasRedisSettings({ REDIS_SENTINELS: '10.0.0.1:26379' })).toBe(true);
      expect(hasRedisSettings({ REDIS_URL: '' })).toBe(false);
    });

    it('names each address that is not host:port', () => {
      const attempt = () =>
        loadConfig({ ...secret, REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2', REDIS_SENTINEL_MASTER: 'mymaster' });
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(
        'REDIS_SENTINELS: "10.0.0.2" is not host:port (a comma-separated list, e.g. 10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379)',
      );
      expect(() => loadConfig({ ...secret, REDIS_CLUSTER_NODES: 'redis://10.0.0.1:6379' })).toThrow(
        'REDIS_CLUSTER_NODES: "redis://10.0.0.1:6379" is not host:port',
      );
      expect(() => loadConfig({ ...secret, REDIS_CLUSTER_NODES: '10.0.0.1:70000' })).toThrow(
        'REDIS_CLUSTER_NODES: "10.0.0.1:70000" is not host:port',
      );
    });

    it('asks for the master name with sentinels, and refuses Sentinel or password settings that would be ignored', () => {
      expect(() => loadConfig({ ...secret, REDIS_SENTINELS: '10.0.0.1:26379' })).toThrow(
        'REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS: the master name the sentinels monitor',
      );
      const ignored = () =>
        loadConfig({ ...base, REDIS_SENTINEL_MASTER: 'mymaster', REDIS_SENTINEL_PASSWORD: 'x', REDIS_PASSWORD: 'y' });
      for (const line of [
        'REDIS_SENTINEL_MASTER: only with REDIS_SENTINELS',
        'REDIS_SENTINEL_PASSWORD: only with REDIS_SENTINELS',
        'REDIS_PASSWORD: not with REDIS_URL: put it in the URL (redis://:password@host:6379)',
      ]) {
        expect(ignored).toThrow(line);
      }
    });
  });

  it("serves a worker's metrics only when WORKER_METRICS_PORT is set, and names the instance when told", () => {
    expect(loadConfig(base)).toMatchObject({ instance: null, jobs: { metricsPort: null } });
    const worker = loadConfig(
      { REDIS_URL: base.REDIS_URL, WORKER_METRICS_PORT: '9400', HERALD_INSTANCE: 'worker-1' },
      { role: 'worker' },
    );
    expect(worker).toMatchObject({ instance: 'worker-1', jobs: { metricsPort: 9400 } });
    expect(() => loadConfig({ ...base, WORKER_METRICS_PORT: '4000' })).toThrow(
      "WORKER_METRICS_PORT: must differ from PORT (4000), the API's port",
    );
    expect(() => loadConfig({ ...base, WORKER_METRICS_PORT: '70000', HERALD_INSTANCE: 'a b' })).toThrow(
      /HERALD_INSTANCE: letters, digits[\s\S]*WORKER_METRICS_PORT: must be at most 65535/,
    );
  });

  it('runs every job kind in one queue each by default, and reads the shards and the kinds a worker runs', () => {
    expect(loadConfig(base)).toMatchObject({ jobs: { queueShards: 1, workerKinds: ['file', 'query'] } });
    expect(loadConfig({ ...base, JOB_QUEUE_SHARDS: '4', WORKER_QUEUES: ' query ,query' })).toMatchObject({
      jobs: { queueShards: 4, workerKinds: ['query'] },
    });
    const attempt = () => loadConfig({ ...base, JOB_QUEUE_SHARDS: '0', WORKER_QUEUES: 'file,files' });
    expect(attempt).toThrow('JOB_QUEUE_SHARDS: must be at least 1');
    expect(attempt).toThrow('WORKER_QUEUES: "files" is not a job kind: a comma-separated list of file, query');
  });

  it('gives each job kind a soft and a hard timeout: JOB_TIMEOUT_MS and 30 s more by default, and a hard one above the soft', () => {
    expect(loadConfig(base).jobs.timeouts).toEqual({
      file: { softMs: 300_000, hardMs: 330_000 },
      query: { softMs: 300_000, hardMs: 330_000 },
    });
    const config = loadConfig({
      ...base,
      JOB_TIMEOUT_MS: '60000',
      JOB_SOFT_TIMEOUT_MS_QUERY: '5000',
      JOB_HARD_TIMEOUT_MS_QUERY: '8000',
    });
    expect(config.jobs.timeouts).toEqual({ file: { softMs: 60_000, hardMs: 90_000 }, query: { softMs: 5_000, hardMs: 8_000 } });
    const attempt = () => loadConfig({ ...base, JOB_SOFT_TIMEOUT_MS_FILE: '2000', JOB_HARD_TIMEOUT_MS_FILE: '2000' });
    expect(attempt).toThrow(
      'JOB_HARD_TIMEOUT_MS_FILE: must be above the soft timeout of file jobs (2000 ms), or a job gets no time to stop by itself',
    );
  });

  it('refuses a replay larger than the history kept', () => {
    expect(() => loadConfig({ ...base, HISTORY_LIMIT: '5', REPLAY_ON_CONNECT: '6' })).toThrow(
      /REPLAY_ON_CONNECT: must not exceed HISTORY_LIMIT \(5\)/,
    );
  });

  it('has connection limits with defaults, and one size limit for HTTP bodies and WebSocket messages', () => {
    expect(loadConfig(base)).toMatchObject({
      limits: {
        maxRequestBytes: 10 * 1024 * 1024 + 64 * 1024,
        maxConnectionsPerUser: 32,
        maxSubscriptionsPerConnection: 100,
        mutationsPerMinute: 600,
      },
      websocket: { keepAliveMs: 12_000 },
      auth: { revocationTtlSeconds: 7 * 24 * 3600 },
    });
    expect(loadConfig({ ...base, MAX_UPLOAD_BYTES: '100', MAX_CONTENT_BYTES: '2000' }).limits.maxRequestBytes).toBe(
      2000 + 64 * 1024,
    );
    expect(() => loadConfig({ ...base, MAX_CONNECTIONS_PER_USER: '0', WS_KEEPALIVE_MS: '10' })).toThrow(
      /MAX_CONNECTIONS_PER_USER: must be at least 1[\s\S]*WS_KEEPALIVE_MS: must be at least 100/,
    );
  });
});
