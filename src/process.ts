import { ConfigError } from './config.js';
import type { Logger } from './logger.js';

/** Runs an entry point; a bad configuration prints its message and exits 2, without a stack trace. */
export function runMain(start: () => Promise<void>): void {
  start().catch((error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });
}

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
