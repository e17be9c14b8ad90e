import { pino, type Logger } from 'pino';

/** One structured logger per process; tokens are redacted wherever they appear. */
export function createLogger(level: string, name: string): Logger {
  return pino({
    name,
    level,
    redact: ['authorization', '*.authorization', 'token', '*.token', 'req.headers.authorization'],
  });
}
export type { Logger };
