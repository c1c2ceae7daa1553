import { isCdcError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Runs a service's main: logs a CdcError with its code and what to do, stops cleanly
 * on SIGINT/SIGTERM by calling the returned stop function, and sets the exit code.
 */
export async function runService(logger: Logger, main: () => Promise<() => Promise<void>>): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'stopping');
    try {
      await stop?.();
    } finally {
      process.exit(0);
    }
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    stop = await main();
  } catch (err) {
    if (isCdcError(err)) {
      logger.fatal({ code: err.code, action: err.action, details: err.details }, err.message);
      process.stderr.write(`\n${err.toString()}\n`);
    } else {
      logger.fatal({ err }, 'failed to start');
    }
    process.exit(1);
  }
}
