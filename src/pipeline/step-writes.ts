import type { Logger } from 'pino';
import type { Db, Tx } from '../store/db.js';

/**
 * The step-row writes of one pipeline run, off the steps' critical path: a step starts and its
 * dependents start without waiting for the database. Writes are applied in the order they were
 * queued; those queued while a transaction is in flight go together in the next one (one commit for
 * several rows). The run awaits `drained()` before its finishing transaction, so the final state is
 * always written after every step row.
 *
 * Every write stays guarded (`WHERE status = …`): a row another instance or the cancel API changed
 * meanwhile is left alone, as when the writes were awaited one by one.
 */
export class StepRowWrites {
  private queue: Array<(trx: Tx) => Promise<unknown>> = [];
  private running: Promise<void> | null = null;
  private failure: unknown = null;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
  ) {}

  add(write: (trx: Tx) => Promise<unknown>): void {
    this.queue.push(write);
    this.running ??= this.flush();
  }

  /** Resolves once every queued write is applied; rejects with the first failure, if any. */
  async drained(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.db.transaction().execute(async (trx) => {
            for (const write of batch) await write(trx);
          });
        } catch (err) {
          this.failure ??= err;
          this.log.error({ err }, 'writing pipeline step rows failed');
        }
      }
    } finally {
      this.running = null;
    }
  }
}
