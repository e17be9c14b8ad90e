import { loadConfig } from './config.js';
import { startWorkers } from './jobs/workers.js';
import { createLogger } from './logger.js';
import { runMain, runUntilSignal } from './process.js';

runMain(async () => {
  const config = loadConfig(process.env, { role: 'worker' });
  const logger = createLogger(config.logLevel, 'herald-worker');
  const workers = await startWorkers(config, logger);
  logger.info(
    { concurrency: config.jobs.concurrency, metrics: workers.metricsUrl ? `${workers.metricsUrl}/metrics` : undefined },
    'worker ready',
  );
  runUntilSignal(logger, () => workers.close());
});
