import type { Logger } from 'pino';
import type { LogSink } from '../core/log-sink.js';

/**
 * A step's (masked) output as log entries of service `pipeline`, one per line, so step logs are
 * searched with everything else. Writes are batched per output chunk and never block the step: a
 * refused write (the store is busy) is counted, not retried.
 */
export class StepLogEntries {
  private partial = '';
  private failed = 0;

  constructor(
    private readonly sink: LogSink,
    private readonly log: Logger,
    private readonly context: { projectId: string; attributes: Record<string, string> },
  ) {}

  push(text: string): void {
    const lines = (this.partial + text).split(/\r?\n/);
    this.partial = lines.pop() ?? '';
    // A line without an end that grows past 16 KiB is written as it is.
    if (this.partial.length > 16_384) {
      lines.push(this.partial);
      this.partial = '';
    }
    this.write(lines);
  }

  end(): void {
    if (this.partial) this.write([this.partial]);
    this.partial = '';
    if (this.failed > 0) this.log.warn({ lines: this.failed }, 'step log lines not written to the log store');
  }

  private write(lines: string[]): void {
    if (lines.length === 0) return;
    const time = new Date();
    this.sink
      .write(
        lines.map((body) => ({
          time,
          level: 'info' as const,
          service: 'pipeline',
          body,
          projectId: this.context.projectId,
          attributes: this.context.attributes,
        })),
      )
      .catch(() => {
        this.failed += lines.length;
      });
  }
}
