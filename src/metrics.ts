import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * A registry for one process (the API's or a worker's): Node's process metrics under `herald_`.
 * One per app rather than prom-client's global one, so several apps in one test process never
 * share series.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  return registry;
}

/**
 * Puts `instance` on every series of the registry: HERALD_INSTANCE when set, else the host name
 * and the port the process serves /metrics on (unique per container or machine). Default labels
 * are added when the registry is scraped, so the hot path pays nothing for them.
 */
export function labelInstance(registry: Registry, instance: string | null, port: number): void {
  registry.setDefaultLabels({ instance: instance ?? `${hostname()}:${port}` });
}

/**
 * `herald_redis_up{connection}`: 1 while that connection of the process is ready, 0 while it is
 * reconnecting. A process whose commands connection stays at 0 serves nothing that needs Redis.
 */
export function watchRedis(registry: Registry, connections: Readonly<Record<string, { status: string }>>): void {
  new Gauge({
    name: 'herald_redis_up',
    help: 'Whether each Redis connection of this process is ready (1) or reconnecting (0), by connection.',
    labelNames: ['connection'] as const,
    registers: [registry],
    collect() {
      for (const [connection, redis] of Object.entries(connections)) this.set({ connection }, redis.status === 'ready' ? 1 : 0);
    },
  });
}

/** A plain-text answer that no proxy caches. */
export function sendText(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** Answers `/healthz` (the process is up) and `/metrics`; false for any other path. */
export async function answerProbe(path: string, registry: Registry, res: ServerResponse): Promise<boolean> {
  if (path === '/healthz') sendText(res, 200, 'ok\n');
  else if (path === '/metrics') sendText(res, 200, await registry.metrics(), registry.contentType);
  else return false;
  return true;
}

/** A small HTTP server with `/healthz` and `/metrics` only, for processes that serve nothing else (workers). */
export async function serveMetrics(registry: Registry, options: { host: string; port: number; instance: string | null }) {
  const server = createServer((req, res) => {
    const [path = '/'] = (req.url ?? '/').split('?', 1);
    answerProbe(path, registry, res).then(
      (answered) => answered || sendText(res, 404, 'not found\n'),
      () => sendText(res, 500, 'could not collect metrics\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  labelInstance(registry, options.instance, port);
  const host = options.host === '0.0.0.0' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
