import { createRequire } from 'node:module';
import type { DestinationStream, Logger } from 'pino';
import pino from 'pino';
import type { Config } from '../config.js';

/**
 * Where the process logs go: human-readable lines on a terminal (or with PLATFORM_LOG_FORMAT=pretty),
 * JSON lines otherwise (pipes, files, log collectors; PLATFORM_LOG_FORMAT=json). Both write
 * synchronously: lines keep their order with what is written to stdout directly (the bootstrap
 * banner), and nothing is lost when the process dies. Without pino-pretty installed
 * (`npm ci --omit=dev`), JSON.
 */
export function logDestination(config: Pick<Config, 'log_format' | 'dev'>): DestinationStream {
  const pretty =
    config.log_format === 'pretty' || (config.log_format === 'auto' && (config.dev || process.stdout.isTTY));
  if (pretty) {
    try {
      const require = createRequire(import.meta.url);
      const build = require('pino-pretty') as (o: Record<string, unknown>) => DestinationStream;
      return build({
        sync: true,
        colorize: Boolean(process.stdout.isTTY),
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
      });
    } catch {
      // not installed: JSON
    }
  }
  return pino.destination({ dest: 1, sync: true });
}

/** What never reaches a log line (also the observability store's copy of the platform log). */
export const LOG_REDACT = {
  paths: [
    'req.headers.authorization',
    'req.headers.cookie',
    'res.headers["set-cookie"]',
    '*.password',
    '*.token',
  ],
  censor: '[redacted]',
};

export function createLogger(
  config: Pick<Config, 'log_level' | 'dev'>,
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: config.log_level,
      redact: LOG_REDACT,
    },
    // Synchronous writes: nothing is lost when the process dies.
    destination ??
      (config.dev ? pino.transport({ target: 'pino-pretty' }) : pino.destination({ dest: 1, sync: true })),
  );
}
