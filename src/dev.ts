import { join } from 'node:path';
import { buildApp } from './app.js';
import { signToken } from './auth/token.js';
import { hasRedisSettings, loadConfig } from './config.js';
import { DEV_DATA_DIR, devSecret, existingDevSecrets } from './dev/data.js';
import { ensureRedisServer, startRedisServer, type RedisServer } from './dev/redis-server.js';
import { startWorkers } from './jobs/workers.js';
import { createLogger } from './logger.js';
import { runMain, runUntilSignal } from './process.js';
import { describeRedis } from './redis.js';
import { startTracing } from './tracing.js';

/**
 * `npm run dev`: everything on one machine with no set-up. A private redis-server under .data/
 * when no Redis is configured, the API and a worker in this process, and a token ready to paste.
 */
runMain(async () => {
  const secret = process.env.JWT_SECRET || devSecret();
  const env: Record<string, string | undefined> = { ...process.env, JWT_SECRET: secret };
  let redis: RedisServer | null = null;
  if (!hasRedisSettings(env)) {
    ensureRedisServer();
    redis = await startRedisServer({ dataDir: join(DEV_DATA_DIR, 'redis'), appendOnly: true });
    env.REDIS_URL = redis.url;
  }
  try {
    const config = loadConfig(env, { mode: 'dev', developmentSecrets: existingDevSecrets() });
    const logger = createLogger(config.logLevel, 'herald-dev');
    const tracing = startTracing(config.tracing, 'herald-dev');
    // NODE_ENV=production makes no dev token: one signed with a production secret would be a real credential.
    const token = config.production
      ? undefined
      : await signToken(secret, { sub: 'dev-user', roles: ['admin'], projects: ['demo'], ttlSeconds: 7 * 24 * 3600 });
    const app = buildApp(config, { logger, devToken: token });
    const { url } = await app.start();
    const workers = await startWorkers(config, logger);
    console.log(
      [
        '',
        '  Herald is running.',
        `  Live page:  ${url}/${token ? '   (signed in with the dev token)' : ''}`,
        ...(config.graphiql
          ? [`  GraphiQL:   ${url}/graphql${token ? '   (the dev token is already in its headers)' : ''}`]
          : []),
        `  WebSocket:  ${url.replace(/^http/, 'ws')}/graphql`,
        `  Redis:      ${describeRedis(config.redis)}${redis ? ' (embedded, data in .data/redis)' : ''}`,
        '',
        ...(token
          ? ['  Dev token (sub dev-user, roles [admin], projects [demo], valid 7 days):', `  ${token}`]
          : ['  No dev token: NODE_ENV=production.']),
        '',
        '  Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    runUntilSignal(logger, async () => {
      await workers.close();
      await app.stop();
      await tracing?.stop();
      await redis?.stop();
    });
  } catch (error) {
    await redis?.stop();
    throw error;
  }
});
