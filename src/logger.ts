import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Where a token could be in something logged: an Authorization header (alone, in `headers`, in
 * `req.headers`), a connection_init payload, refreshToken's argument or variables. No log line
 * puts one there; this is the safety net for one that someday does.
 */
const REDACTED = [
  'authorization',
  '*.authorization',
  '*.*.authorization',
  'token',
  '*.token',
  '*.*.token',
  'connectionParams',
  '*.connectionParams',
  'cookie',
  '*.cookie',
  '*.*.cookie',
];

/** One structured logger per process, on stdout unless `destination` says otherwise (tests capture it). */
export function createLogger(level: string, name: string, destination?: DestinationStream): Logger {
  return pino({ name, level, redact: REDACTED }, destination);
}
export type { Logger };
