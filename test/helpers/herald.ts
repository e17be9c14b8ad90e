import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { buildApp, type App } from '../../src/app.js';
import { signToken, type TokenClaims } from '../../src/auth/token.js';
import { loadConfig, type Config } from '../../src/config.js';
import { startWorkers } from '../../src/jobs/workers.js';
import { createLogger } from '../../src/logger.js';
import { redisUrl, uniquePrefix } from './redis.js';

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256';

export interface Herald {
  app: App;
  config: Config;
  url: string;
  wsUrl: string;
  token(claims: TokenClaims | string): Promise<string>;
  ws(token: string | null, options?: { lazy?: boolean }): Client;
  sse(token: string | null): ReturnType<typeof createSseClient>;
  /** POSTs a GraphQL operation over HTTP and returns status and body. */
  http<TData = Record<string, unknown>, TVariables = Record<string, unknown>>(
    token: string | null,
    query: string | TypedDocumentNode<TData, TVariables>,
    variables?: TVariables,
  ): Promise<{ status: number; body: GraphQLBody<TData> }>;
  startWorkers(): Promise<void>;
  stopWorkers(): Promise<void>;
  stop(): Promise<void>;
}

export interface GraphQLBody<TData = Record<string, unknown>> {
  data?: TData | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/** A real API (and, unless told otherwise, a real worker) on a free port under a fresh key prefix. */
export async function startHerald(env: Record<string, string> = {}, options: { workers?: boolean } = {}): Promise<Herald> {
  const config = loadConfig({
    REDIS_URL: redisUrl(),
    JWT_SECRET: TEST_SECRET,
    KEY_PREFIX: uniquePrefix(),
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    JOB_BACKOFF_MS: '50',
    ...env,
  });
  const logger = createLogger(config.logLevel, 'test');
  const app = buildApp(config, { logger });
  const { url } = await app.start();
  const wsUrl = url.replace(/^http/, 'ws') + '/graphql';
  let workers: Awaited<ReturnType<typeof startWorkers>> | null = null;
  const clients: Array<{ dispose(): unknown }> = [];
  const herald: Herald = {
    app,
    config,
    url,
    wsUrl,
    token: (claims) => signToken(TEST_SECRET, typeof claims === 'string' ? { sub: claims } : claims),
    ws(token, opts = {}) {
      const client = createWsClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        lazy: opts.lazy ?? true,
        retryAttempts: 0,
        connectionParams: token === null ? {} : { authorization: `Bearer ${token}` },
      });
      clients.push(client);
      return client;
    },
    sse(token) {
      const client = createSseClient({
        url: `${url}/graphql`,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        retryAttempts: 0,
      });
      clients.push(client);
      return client;
    },
    async http<TData, TVariables>(
      token: string | null,
      query: string | TypedDocumentNode<TData, TVariables>,
      variables?: TVariables,
    ) {
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query: typeof query === 'string' ? query : print(query), variables }),
      });
      return { status: response.status, body: (await response.json()) as GraphQLBody<TData> };
    },
    async startWorkers() {
      workers ??= await startWorkers(config, logger);
    },
    async stopWorkers() {
      await workers?.close();
      workers = null;
    },
    async stop() {
      for (const client of clients) await client.dispose();
      await herald.stopWorkers();
      await app.stop();
    },
  };
  if (options.workers !== false) await herald.startWorkers();
  return herald;
}
