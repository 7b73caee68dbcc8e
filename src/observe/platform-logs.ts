import pino, { type Logger } from 'pino';
import type { LogEntryInput, LogLevel, LogSink } from '../core/log-sink.js';
import { LOG_REDACT } from '../core/logger.js';

const LEVELS: Record<number, LogLevel> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
/** Fields of a pino line that are not attributes. */
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);
/** Fastify's per-request access lines: counted by /metrics, too many to keep as log entries. */
const ACCESS_LINES = new Set(['incoming request', 'request completed']);

/**
 * The platform's own log, copied into the observability store as service `platform`: a logger
 * writing every line to the original destination and, from `floor` up, to the LogSink attached once
 * the observe module exists. Lines of the observe module itself are not copied (a failing flush
 * must not log into the buffer it failed to flush), and a refused write is dropped silently.
 */
export class PlatformLogTap {
  private sink: LogSink | undefined;
  readonly log: Logger;

  constructor(
    base: Logger,
    private readonly floor = 30,
  ) {
    const destination = (base as unknown as Record<symbol, { write(line: string): void }>)[
      pino.symbols.streamSym
    ];
    const tap = {
      write: (line: string) => {
        destination?.write(line);
        if (this.sink) this.copy(line);
      },
    };
    this.log = pino({ level: base.level, redact: LOG_REDACT }, tap);
  }

  attach(sink: LogSink): void {
    this.sink = sink;
  }

  private copy(line: string): void {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const level = Number(record.level);
    if (!(level >= this.floor) || record.module === 'observe') return;
    const msg = typeof record.msg === 'string' ? record.msg : '';
    if (ACCESS_LINES.has(msg)) return;
    const attributes: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(record)) {
      if (SKIP.has(k) || v === null || v === undefined) continue;
      attributes[k] =
        typeof v === 'object' ? JSON.stringify(v).slice(0, 4096) : (v as string | number | boolean);
    }
    const entry: LogEntryInput = {
      time: typeof record.time === 'number' ? new Date(record.time) : new Date(),
      level: LEVELS[Math.floor(level / 10) * 10] ?? 'info',
      service: 'platform',
      body: msg,
      userId: typeof record.user_id === 'string' ? record.user_id : null,
      attributes,
    };
    this.sink?.write([entry]).catch(() => {});
  }
}
