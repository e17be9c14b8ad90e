import type { Logger } from './logger.js';

/**
 * Stops cleanly on SIGINT or SIGTERM, and hard after `graceMs` so a stuck close never keeps a
 * process (or a deployment) waiting forever.
 */
export function runUntilSignal(logger: Logger, stop: () => Promise<void>, graceMs = 10_000): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    setTimeout(() => {
      logger.error('did not stop in time, exiting');
      process.exit(1);
    }, graceMs).unref();
    stop().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error({ err: error.message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
