/**
 * The one public way for a module to write log entries into the observability store (the observe
 * module implements it; app.ts hands it to the producers: pipeline step logs, deployed processes,
 * agent sessions, the platform's own logs). Producers above observe in the module map depend on
 * this interface, never on the observe module itself.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface LogEntryInput {
  /** Defaults to now. */
  time?: Date;
  level: LogLevel;
  /** `service.name`: `pipeline`, `deploy`, `agent`, `platform`, or a deployed app's own name. */
  service: string;
  body: string;
  projectId?: string | null;
  sessionId?: string | null;
  userId?: string | null;
  traceId?: string | null;
  spanId?: string | null;
  /** Flat string/number/boolean attributes (e.g. `pipeline.id`, `step.name`, `deployment.env`). */
  attributes?: Record<string, string | number | boolean>;
}

export interface LogSink {
  /**
   * Queues the entries for the next flush; resolves once they are durable (or rejects when the
   * store refused them). Callers that must not wait may ignore the promise but should catch it.
   */
  write(entries: LogEntryInput[]): Promise<void>;
}
