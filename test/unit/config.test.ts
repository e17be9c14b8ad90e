import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const base = { REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) };

describe('configuration', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig(base);
    expect(config).toMatchObject({ port: 4000, host: '0.0.0.0', updates: { historyLimit: 100, replayOnConnect: 10 } });
    expect(loadConfig(base, { mode: 'dev' }).host).toBe('127.0.0.1');
  });

  it('lists every bad value at once, with a clear message', () => {
    const attempt = () => loadConfig({ PORT: 'eighty', HISTORY_LIMIT: '0', REDIS_URL: 'http://x', JWT_SECRET: 'short' });
    expect(attempt).toThrow(ConfigError);
    for (const line of [
      'PORT: must be a whole number',
      'HISTORY_LIMIT: must be at least 1',
      'REDIS_URL: must start with redis:// or rediss://',
      'JWT_SECRET: must be at least 32 characters',
    ]) {
      expect(attempt).toThrow(line);
    }
  });

  it('requires REDIS_URL, and JWT_SECRET for the API only', () => {
    expect(() => loadConfig({})).toThrow(/REDIS_URL: required[\s\S]*JWT_SECRET: required/);
    expect(loadConfig({ REDIS_URL: base.REDIS_URL }, { role: 'worker' }).redisUrl).toBe(base.REDIS_URL);
  });

  it('refuses a replay larger than the history kept', () => {
    expect(() => loadConfig({ ...base, HISTORY_LIMIT: '5', REPLAY_ON_CONNECT: '6' })).toThrow(/REPLAY_ON_CONNECT: must not exceed HISTORY_LIMIT \(5\)/);
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
    expect(loadConfig({ ...base, MAX_UPLOAD_BYTES: '100', MAX_CONTENT_BYTES: '2000' }).limits.maxRequestBytes).toBe(2000 + 64 * 1024);
    expect(() => loadConfig({ ...base, MAX_CONNECTIONS_PER_USER: '0', WS_KEEPALIVE_MS: '10' })).toThrow(
      /MAX_CONNECTIONS_PER_USER: must be at least 1[\s\S]*WS_KEEPALIVE_MS: must be at least 100/,
    );
  });
});
