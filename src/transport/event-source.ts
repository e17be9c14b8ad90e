import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { bearerToken, InvalidTokenError, type TokenVerifier } from '../auth/token.js';
import { ErrorCode } from '../errors.js';
import { isAsyncIterable } from './async-iterable.js';
import { sendErrorJson, withoutHttp } from './error-codes.js';
import { resultCursor } from './subscription-execution.js';

/** How long a dropped EventSource waits before it reconnects (`retry:`); browsers default to about 3 s. */
export const SSE_RETRY_MS = 1_000;

/** A comment this often keeps proxies from closing a quiet stream (Yoga's own SSE interval). */
const PING_MS = 12_000;

/** Where a browser trades its access token for the SSE cookie (POST) and drops it (DELETE). */
export const SSE_SESSION_PATH = '/sse-session';

/** The cookie that authenticates EventSource requests: it holds the access token, out of URLs and out of scripts' reach. */
export const SSE_COOKIE = 'herald_sse';

type ResultProcessor = Parameters<Parameters<NonNullable<Plugin['onResultProcess']>>[0]['setResultProcessor']>[0];

function frame(result: ExecutionResult): string {
  const cursor = resultCursor(result);
  const json = JSON.stringify(result.errors?.length ? { ...result, errors: withoutHttp(result.errors) } : result);
  return `${cursor === undefined ? '' : `id: ${cursor}\n`}event: next\ndata: ${json}\n\n`;
}

/**
 * Yoga's SSE framing (graphql-sse's distinct connections mode: `next` events, then `complete`)
 * plus what EventSource needs to resume: a `retry:` hint first, and `id: <cursor>` on every event
 * whose field declares a cursor, so a reconnect sends it back as `Last-Event-ID`. Results come
 * through Yoga's plugins as before (masked errors, revocation), only the framing is ours.
 */
const processEventStream: ResultProcessor = (result, fetchAPI) => {
  const iterator = (result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator]();
  const encoder = new fetchAPI.TextEncoder();
  let ping: ReturnType<typeof setInterval> | undefined;
  const body = new fetchAPI.ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${SSE_RETRY_MS}\n\n`));
      ping = setInterval(() => {
        if ((controller.desiredSize ?? 0) > 0) controller.enqueue(encoder.encode(':\n\n'));
      }, PING_MS);
    },
    async pull(controller) {
      const step = await iterator.next();
      if (!step.done) return controller.enqueue(encoder.encode(frame(step.value)));
      clearInterval(ping);
      controller.enqueue(encoder.encode('event: complete\ndata:\n\n'));
      controller.close();
    },
    async cancel() {
      clearInterval(ping);
      await iterator.return?.();
    },
  });
  return new fetchAPI.Response(body, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream',
      connection: 'keep-alive',
      'cache-control': 'no-cache',
      'content-encoding': 'none',
    },
  });
};

/**
 * Frames subscription streams for SSE with event ids (see processEventStream). Yoga has already
 * chosen SSE when it set a processor for a stream: its only other processor for subscriptions
 * takes single results, and graphql-js 16 streams nothing else.
 */
export function useEventStreamIds(): Plugin {
  return {
    onResultProcess(payload) {
      if (payload.resultProcessor && isAsyncIterable(payload.result))
        payload.setResultProcessor(processEventStream, 'text/event-stream');
    },
  };
}

/**
 * The access token in the SSE cookie, for a GET asking for an event stream and nothing else: a
 * cookie goes with every request to its path, so it must not authorize anything a cross-site page
 * could make a browser send (Yoga refuses mutations over GET; SameSite=Strict keeps it off
 * cross-site requests as well).
 */
export function eventStreamCookieToken(request: Request): string | null {
  if (request.method !== 'GET' || !request.headers.get('accept')?.includes('text/event-stream')) return null;
  for (const pair of request.headers.get('cookie')?.split(';') ?? []) {
    const [name, value] = pair.trim().split('=', 2);
    if (name === SSE_COOKIE && value) return value;
  }
  return null;
}

function sessionCookie(req: IncomingMessage, token: string, maxAgeSeconds: number | null): string {
  const secure = (req.socket as Partial<TLSSocket>).encrypted === true || req.headers['x-forwarded-proto'] === 'https';
  return [
    `${SSE_COOKIE}=${token}`,
    'Path=/graphql',
    'HttpOnly',
    'SameSite=Strict',
    ...(maxAgeSeconds === null ? [] : [`Max-Age=${maxAgeSeconds}`]),
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/**
 * `POST /sse-session` with `Authorization: Bearer <token>` sets the SSE cookie to that token, for
 * no longer than the token lives; `DELETE` drops it. The token is verified here as on every
 * request (expiry, revocation), and again whenever the cookie is used, by the same verifier.
 * Other methods (a CORS preflight among them) get 405, so no other origin can set it.
 */
export async function answerSseSession(
  req: IncomingMessage,
  res: ServerResponse,
  verify: TokenVerifier,
  onAuthFailure: () => void,
): Promise<void> {
  if (req.method === 'DELETE') {
    res.writeHead(204, { 'set-cookie': sessionCookie(req, '', 0), 'cache-control': 'no-store' }).end();
    return;
  }
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST, DELETE');
    return sendErrorJson(res, 405, ErrorCode.BadUserInput, 'POST or DELETE only');
  }
  const token = bearerToken(req.headers.authorization);
  try {
    const viewer = await verify(token);
    const maxAge = viewer.expiresAt === null ? null : Math.max(0, viewer.expiresAt - Math.floor(Date.now() / 1000));
    res.writeHead(204, { 'set-cookie': sessionCookie(req, token ?? '', maxAge), 'cache-control': 'no-store' }).end();
  } catch (error) {
    if (!(error instanceof InvalidTokenError)) throw error;
    onAuthFailure();
    sendErrorJson(res, 401, ErrorCode.Unauthenticated, error.message);
  }
}
