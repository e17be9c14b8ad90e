import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import type { Metrics } from './metrics.js';
import type { HeraldYoga } from './yoga.js';

export interface HttpHandlerOptions {
  yoga: HeraldYoga;
  redis: Redis;
  metrics: Metrics;
  /** Largest request body accepted, by Content-Length; uploads are the largest legitimate bodies. */
  maxBodyBytes: number;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** Health, readiness and metrics beside Yoga, answered without touching GraphQL. */
export function createHttpHandler({ yoga, redis, metrics, maxBodyBytes }: HttpHandlerOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return send(res, 200, 'ok\n');
    if (path === '/readyz') {
      const ready = await Promise.race([
        redis.ping().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000).unref()),
      ]);
      return send(res, ready ? 200 : 503, ready ? 'ready\n' : 'redis is not answering\n');
    }
    if (path === '/metrics') return send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > maxBodyBytes) {
      metrics.limitsHit.inc({ limit: 'request_body_size' });
      res.setHeader('connection', 'close');
      return send(
        res,
        413,
        JSON.stringify({ errors: [{ message: `request body over ${maxBodyBytes} bytes`, extensions: { code: 'BAD_USER_INPUT' } }] }),
        'application/json',
      );
    }
    await yoga(req, res, { req, res });
  };
}
