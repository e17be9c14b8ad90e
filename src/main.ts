import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { existingDevSecrets } from './dev/data.js';
import { createLogger } from './logger.js';
import { runMain, runUntilSignal } from './process.js';
import { startTracing } from './tracing.js';

runMain(async () => {
  const config = loadConfig(process.env, { developmentSecrets: existingDevSecrets() });
  const tracing = startTracing(config.tracing, 'herald-api');
  const logger = createLogger(config.logLevel, 'herald-api');
  const app = buildApp(config, { logger });
  const { url } = await app.start();
  logger.info({ url: `${url}/graphql` }, 'API ready');
  runUntilSignal(logger, async () => {
    await app.stop();
    await tracing?.stop();
  });
});
