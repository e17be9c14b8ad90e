import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Redis } from 'ioredis';
import type { TokenVerifier } from '../auth/token.js';
import { ErrorCode } from '../errors.js';
import { answerProbe, sendText } from '../metrics.js';
import { withTimeout } from '../timeouts.js';
import { SCRIPT_VERSION_PARAM, type LivePage, type WebAsset } from '../web/page.js';
import type { Metrics } from './metrics.js';
import { answerSseSession, SSE_SESSION_PATH } from './event-source.js';
import { sendErrorJson } from './error-codes.js';
import { PUBLISH_PATH_PREFIX, type PublishHandler } from './publish.js';
import { drainRefusedBody, type DrainLimits } from './refused-body.js';
import type { HeraldYoga } from './yoga.js';

export interface HttpHandlerOptions {
  yoga: HeraldYoga;
  redis: Redis;
  metrics: Metrics;
  /** Checks the token a browser trades for the SSE cookie. */
  verify: TokenVerifier;
  /** The live page at `/` and its script at `/app.js`. */
  page: LivePage;
  /** The publish endpoint for services, under `/v1/`: it has its own, smaller, body limit. */
  publish: PublishHandler;
  /** Largest request body accepted, by Content-Length; uploads are the largest legitimate bodies. */
  maxBodyBytes: number;
  /** How much of a refused body is read before the 413, so the client can read it. */
  drain: DrainLimits;
}

/**
 * Answers with `asset`, or 304 when the client already has it. The page is revalidated on every
 * load (it names the current bundle); the bundle at its versioned URL never changes, so it is
 * cached for good, and anything else at /app.js is revalidated.
 */
function sendAsset(req: IncomingMessage, res: ServerResponse, asset: WebAsset, headers: Record<string, string>) {
  const fresh = req.headers['if-none-match'] === asset.etag;
  res.writeHead(fresh ? 304 : 200, { etag: asset.etag, 'x-content-type-options': 'nosniff', ...headers });
  res.end(fresh || req.method === 'HEAD' ? undefined : asset.body);
}

/** Health, readiness, metrics, the live page and the publish endpoint beside Yoga, answered without touching GraphQL. */
export function createHttpHandler({ yoga, redis, metrics, verify, page, publish, maxBodyBytes, drain }: HttpHandlerOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
    if ((path === '/' || path === '/app.js') && (req.method === 'GET' || req.method === 'HEAD')) {
      const assets = await page.assets();
      if (path === '/') {
        return sendAsset(req, res, assets.html, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-cache',
          'content-security-policy': assets.contentSecurityPolicy,
        });
      }
      const versioned = `"${new URLSearchParams(query).get(SCRIPT_VERSION_PARAM)}"` === assets.script.etag;
      return sendAsset(req, res, assets.script, {
        'content-type': 'text/javascript; charset=utf-8',
        'cache-control': versioned ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
    if (await answerProbe(path, metrics.registry, res)) return;
    if (path === SSE_SESSION_PATH) {
      return answerSseSession(req, res, verify, () => metrics.authFailures.inc({ transport: 'http' }));
    }
    if (path.startsWith(PUBLISH_PATH_PREFIX)) return publish(req, res, path);
    if (path === '/readyz') {
      const pinged = redis.ping().then(
        () => true,
        () => false,
      );
      const ready = await withTimeout(pinged, 1_000, false);
      return sendText(res, ready ? 200 : 503, ready ? 'ready\n' : 'redis is not answering\n');
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > maxBodyBytes) {
      metrics.limitsHit.inc({ limit: 'request_body_size' });
      metrics.errors.inc({ code: ErrorCode.BadUserInput });
      await drainRefusedBody(req, drain);
      res.setHeader('connection', 'close');
      return sendErrorJson(res, 413, ErrorCode.BadUserInput, `request body over ${maxBodyBytes} bytes`);
    }
    if (req.headers['transfer-encoding'] !== undefined) {
      // Yoga counts a streamed body and cancels it at the limit; cancelling the request itself would
      // destroy the socket before the 413 is written. Yoga reads a body a framework put on `req.body`
      // instead, so it gets a stream in between, and the 413 (yoga.ts) drains the request.
      Object.assign(req, { body: req.pipe(new PassThrough()) });
    }
    await yoga(req, res, { req, res });
  };
}
