import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import { decodeJwt } from 'jose';
import type { DestinationStream } from 'pino';
import WebSocket from 'ws';
import { buildApp, type App } from '../../src/app.js';
import { signToken, type TokenClaims } from '../../src/auth/token.js';
import { loadConfig, type Config } from '../../src/config.js';
import { startWorkers } from '../../src/jobs/workers.js';
import { createLogger } from '../../src/logger.js';
import type { Tuple } from './elements.js';
import { redisUrl, uniquePrefix } from './redis.js';

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256';

/** Real clients of one API instance, signed with the test secret. */
export interface HeraldClients {
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
  /** Closes every client made here. */
  dispose(): Promise<void>;
}

export interface Herald extends HeraldClients {
  app: App;
  config: Config;
  startWorkers(): Promise<void>;
  stopWorkers(): Promise<void>;
  /** The in-process worker's /metrics server (with WORKER_METRICS_PORT set), or null. */
  workerMetricsUrl(): string | null;
  stop(): Promise<void>;
}

export interface GraphQLBody<TData = Record<string, unknown>> {
  data?: TData | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/**
 * A real API (and, unless told otherwise, a real worker) on a free port under a fresh key prefix;
 * `log` receives their log lines instead of stdout.
 */
export async function startHerald(
  env: Record<string, string> = {},
  options: { workers?: boolean; log?: DestinationStream } = {},
): Promise<Herald> {
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
  const logger = createLogger(config.logLevel, 'test', options.log);
  const app = buildApp(config, { logger });
  const { url } = await app.start();
  let workers: Awaited<ReturnType<typeof startWorkers>> | null = null;
  const clients = clientsFor(url);
  const herald: Herald = {
    ...clients,
    app,
    config,
    async startWorkers() {
      workers ??= await startWorkers(config, logger);
    },
    async stopWorkers() {
      await workers?.close();
      workers = null;
    },
    workerMetricsUrl: () => workers?.metricsUrl ?? null,
    async stop() {
      await clients.dispose();
      await herald.stopWorkers();
      await app.stop();
    },
  };
  if (options.workers !== false) await herald.startWorkers();
  return herald;
}

/** Clients for an API at `url`: a graphql-ws client, a graphql-sse client, plain HTTP, and tokens. */
export function clientsFor(url: string): HeraldClients {
  const wsUrl = url.replace(/^http/, 'ws') + '/graphql';
  const made: Array<{ dispose(): unknown }> = [];
  return {
    url,
    wsUrl,
    token: (claims) => signToken(TEST_SECRET, typeof claims === 'string' ? { sub: claims } : claims),
    ws(token, opts = {}) {
      const client = wsClient(wsUrl, token, opts);
      made.push(client);
      return client;
    },
    sse(token) {
      const client = createSseClient({
        url: `${url}/graphql`,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        retryAttempts: 0,
      });
      made.push(client);
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
    async dispose() {
      for (const client of made.splice(0)) await client.dispose();
    },
  };
}

/** The token's `exp` in seconds, read without verifying it: tests compare it with what the server says. */
export function expiryOf(token: string): number {
  const { exp } = decodeJwt(token);
  if (exp === undefined) throw new Error('the token has no exp claim');
  return exp;
}

/** A graphql-ws client that never retries, so a test sees every close; tests observe closes through its events. */
export function wsClient(
  wsUrl: string,
  token: string | null,
  options: { lazy?: boolean; socket?: WebSocket.ClientOptions } = {},
): Client {
  const socketOptions = options.socket;
  return createWsClient({
    url: wsUrl,
    webSocketImpl: socketOptions
      ? class extends WebSocket {
          constructor(url: string, protocols?: string | string[]) {
            super(url, protocols, socketOptions);
          }
        }
      : WebSocket,
    lazy: options.lazy ?? true,
    onNonLazyError: () => undefined,
    retryAttempts: 0,
    connectionParams: token === null ? {} : { authorization: `Bearer ${token}` },
  });
}

/** API instances (no workers) on one Redis under one key prefix, as a deployment runs them. */
export async function startInstances<const N extends number>(
  count: N,
  env: Record<string, string> = {},
): Promise<Tuple<Herald, N>> {
  const keyPrefix = uniquePrefix();
  const apps = await Promise.all(
    Array.from({ length: count }, () => startHerald({ KEY_PREFIX: keyPrefix, ...env }, { workers: false })),
  );
  return apps as Tuple<Herald, N>;
}
