import { AppError } from '../core/errors.js';
import { OBSERVE_REASONS } from './reasons.js';

export interface BufferOptions {
  /** Records held (queued + being flushed) at most; beyond, writers get 429 with Retry-After. */
  maxRecords: number;
  /** A flush starts once this many records wait… */
  batchRecords: number;
  /** …or this long after the first record arrived… */
  lingerMs: number;
  /**
   * …or at once when at least this many wait and a flush slot is free (default 256, at most
   * batchRecords): an OTLP exporter's batch is written without waiting for the linger, while single
   * lines of the platform's own logs still gather for lingerMs.
   */
  eagerRecords?: number;
  /** Flushes of separate batches in flight at once, each its own transaction (default 2). */
  concurrency?: number;
}

const DEFAULT_EAGER_RECORDS = 256;
const DEFAULT_CONCURRENCY = 2;

interface Waiter<R> {
  rows: R[];
  resolve(): void;
  reject(err: unknown): void;
}

/** 429 with Retry-After: the buffer holds as much as it may. */
export function bufferFull(retryAfterSeconds: number): AppError {
  return new AppError(
    429,
    'rate_limited',
    `the ingest buffer is full; retry after ${retryAfterSeconds} s`,
    [],
    {
      'retry-after': String(retryAfterSeconds),
    },
  ).because(OBSERVE_REASONS.bufferFull);
}

/**
 * One signal's write buffer: records queue in memory (bounded) and are written by up to `concurrency` flushes at a time
 * (group commit: everything that arrived while a flush ran goes into the next). `add` resolves only
 * after the flush holding its records committed — the ingest acknowledges durable data only.
 */
export class SignalBuffer<R> {
  private queue: Waiter<R>[] = [];
  private queued = 0;
  private inFlight = 0;
  private readonly flushes = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly eager: number;
  private readonly concurrency: number;

  constructor(
    private readonly options: BufferOptions,
    private readonly write: (rows: R[]) => Promise<void>,
  ) {
    this.eager = Math.max(1, Math.min(options.eagerRecords ?? DEFAULT_EAGER_RECORDS, options.batchRecords));
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  }

  /** Records held now (queued and being written). */
  get size(): number {
    return this.queued + this.inFlight;
  }

  add(rows: R[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('the ingest buffer is closed'));
    // A request bigger than the whole buffer is let in alone (it could never fit otherwise).
    if (this.size > 0 && this.size + rows.length > this.options.maxRecords)
      return Promise.reject(bufferFull(1));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      this.queued += rows.length;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.queue.length === 0) return;
    if (this.flushes.size >= this.concurrency) return; // the next free slot schedules again
    if (this.queued >= this.eager) {
      this.flushNow();
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushNow();
      }, this.options.lingerMs);
      this.timer.unref();
    }
  }

  private flushNow(): void {
    if (this.flushes.size >= this.concurrency || this.queue.length === 0) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch: Waiter<R>[] = [];
    let count = 0;
    while (
      this.queue.length > 0 &&
      (count === 0 || count + (this.queue[0] as Waiter<R>).rows.length <= this.options.batchRecords)
    ) {
      const w = this.queue.shift() as Waiter<R>;
      batch.push(w);
      count += w.rows.length;
    }
    this.queued -= count;
    this.inFlight += count;
    const flush = this.write(batch.flatMap((w) => w.rows)).then(
      () => {
        for (const w of batch) w.resolve();
      },
      (err) => {
        for (const w of batch) w.reject(err);
      },
    );
    this.flushes.add(flush);
    void flush.finally(() => {
      this.flushes.delete(flush);
      this.inFlight -= count;
      this.schedule();
    });
  }

  /** Writes everything queued (stop, tests). */
  async drain(): Promise<void> {
    while (this.flushes.size > 0 || this.queue.length > 0) {
      while (this.queue.length > 0 && this.flushes.size < this.concurrency) this.flushNow();
      await Promise.race([...this.flushes].map((f) => f.catch(() => {})));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
  }
}
