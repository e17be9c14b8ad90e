import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue } from './helpers/metrics.js';
import { freePort, startRedisServer } from './helpers/redis-server.js';
import { collect } from './helpers/streams.js';

let herald: Herald;
beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
});
afterAll(() => herald?.stop());

async function get(base: string, path: string) {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('health and readiness', () => {
  it('/healthz answers 200 without a token', async () => {
    const { status, text } = await get(herald.url, '/healthz');
    expect(status).toBe(200);
    expect(text.trim()).toBe('ok');
  });

  it('/readyz answers 200 while Redis answers', async () => {
    const { status, text } = await get(herald.url, '/readyz');
    expect(status).toBe(200);
    expect(text.trim()).toBe('ready');
  });

  it('/readyz answers 503 (and /healthz 200) when the app points at a Redis that is not running', async () => {
    const port = await freePort();
    const orphan = await startHerald({ REDIS_URL: `redis://127.0.0.1:${port}` }, { workers: false });
    try {
      const started = Date.now();
      const ready = await get(orphan.url, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.text).toMatch(/redis/i);
      // Answered within its own timeout, not left hanging on a Redis that will never answer.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect((await get(orphan.url, '/healthz')).status).toBe(200);
      expect((await get(orphan.url, '/metrics')).status).toBe(200);
    } finally {
      await orphan.stop();
    }
  });

  it('/readyz turns 503 when its Redis goes away, while /healthz stays 200', async () => {
    const redis = await startRedisServer();
    const app = await startHerald({ REDIS_URL: redis.url }, { workers: false });
    try {
      expect((await get(app.url, '/readyz')).status).toBe(200);
      await redis.stop();
      const down = await eventually(
        () => get(app.url, '/readyz'),
        (r) => r.status === 503,
      );
      expect(down.status).toBe(503);
      expect((await get(app.url, '/healthz')).status).toBe(200);
    } finally {
      await app.stop();
      await redis.stop();
    }
  });
});

describe('metrics', () => {
  it('/metrics is Prometheus text with the WebSocket gauge and default process metrics', async () => {
    const { status, type, text } = await get(herald.url, '/metrics');
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    expect(type).toContain('version=0.0.4');
    expect(text).toContain('# HELP herald_websocket_connections ');
    expect(text).toContain('# TYPE herald_websocket_connections gauge');
    expect(metricValue(text, 'herald_websocket_connections')).not.toBeNull();
    expect(text).toContain('# TYPE herald_process_cpu_user_seconds_total counter');
    expect(metricValue(text, 'herald_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(metricValue(text, 'herald_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Every non-comment line is `series value`.
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/);
    }
  });

  it('counts open WebSocket connections up and down', async () => {
    const metric = async () => metricValue((await get(herald.url, '/metrics')).text, 'herald_websocket_connections');
    const before = await metric();
    const client = herald.ws(await herald.token('alice'), { lazy: false });
    await new Promise<void>((resolve) => client.on('connected', () => resolve()));
    expect(await eventually(metric, (v) => v === before! + 1)).toBe(before! + 1);
    const me = await collect(client, MeDocument, {}, { field: 'me' });
    expect(me.items).toHaveLength(1);
    await client.dispose();
    expect(await eventually(metric, (v) => v === before)).toBe(before);
  });

  it('counts refused tokens', async () => {
    const metric = async () =>
      metricValue((await get(herald.url, '/metrics')).text, 'herald_auth_failures_total', { transport: 'http' }) ?? 0;
    const before = await metric();
    expect((await herald.http('bad-token', MeDocument)).status).toBe(401);
    expect(await metric()).toBe(before + 1);
  });
});
