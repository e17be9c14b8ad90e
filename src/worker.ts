import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import { startWorkers } from './jobs/workers.js';
import { createLogger } from './logger.js';
import { runMain, runUntilSignal } from './process.js';
import { startTracing } from './tracing.js';

runMain(async () => {
  // `--queues file,query` is WORKER_QUEUES on the command line (it wins), validated with the rest.
  const { values } = parseArgs({ options: { queues: { type: 'string' } } });
  const config = loadConfig({ ...process.env, WORKER_QUEUES: values.queues ?? process.env.WORKER_QUEUES }, { role: 'worker' });
  const logger = createLogger(config.logLevel, 'herald-worker');
  const tracing = startTracing(config.tracing, 'herald-worker');
  const workers = await startWorkers(config, logger);
  logger.info(
    {
      kinds: config.jobs.workerKinds,
      concurrency: config.jobs.concurrency,
      metrics: workers.metricsUrl ? `${workers.metricsUrl}/metrics` : undefined,
    },
    'worker ready',
  );
  runUntilSignal(logger, async () => {
    await workers.close();
    await tracing?.stop();
  });
});
