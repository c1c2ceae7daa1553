import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Row images and key material never reach a log call by design;
 * the redact list is a second line of defence for fields that could carry them.
 */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name: service,
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['before', 'after', 'row', 'value', 'password', '*.password', 'key', 'material', '*.material', 'connection.password'],
      censor: '[redacted]',
    },
  });
}
