import type { Logger } from 'pino';
import { AppError } from '../core/errors.js';
import type { LogEntryInput, LogSink } from '../core/log-sink.js';
import { isUuid } from '../core/validation.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { logLevels } from '../store/schema.js';
import { dateToIso } from './attributes.js';
import { type BufferOptions, SignalBuffer } from './buffer.js';
import type { Decoded, Signal } from './decode.js';
import type { SessionDirectory } from './envelope.js';
import { OBSERVE_REASONS } from './reasons.js';
import {
  type ConvertContext,
  type Converted,
  convertLogs,
  convertMetrics,
  convertSpans,
  type LogRow,
  type MetricPointRow,
  type SpanRow,
} from './records.js';
import {
  dayOf,
  ensurePartitions,
  insertLogRows,
  insertMetricPoints,
  insertSpanRows,
  type PartitionedTable,
  upsertTraces,
} from './writes.js';

/** The PubSub channel every durable batch of log entries is published on (live tail). */
export const OBSERVE_LOGS_CHANNEL = 'observe.logs';
/**
 * Instances with an open live tail say so here (at its opening, then every TAIL_DEMAND_REFRESH_MS):
 * the ingest publishes its batches only while some instance wants them, so a platform nobody tails
 * does not serialise every batch to JSON (and parse it back) for nothing.
 */
export const tailDemandChannel = (channel: string) => `${channel}.demand`;
export const TAIL_DEMAND_REFRESH_MS = 10_000;
/** A demand is forgotten this long after its last refresh (an instance that died, two lost refreshes). */
export const TAIL_DEMAND_TTL_MS = 3 * TAIL_DEMAND_REFRESH_MS;

export interface IngestOptions {
  buffer: BufferOptions;
  /** Records older than this are refused (partial success): no partition for a long-gone day. */
  maxAgeMs: number;
  maxFutureMs: number;
}

/** Who may write which project's records: `observe:write` checked per distinct project (null = global). */
export type WriteCheck = (projectId: string | null) => Promise<boolean>;

export interface IngestResult {
  accepted: number;
  rejected: number;
  errorMessage: string;
}

const MAX_SINK_MESSAGE = 64 * 1024;

/**
 * The write path of every signal: converted records go through a bounded buffer per signal and are
 * written by multi-row INSERTs; a caller's promise resolves once its records are committed.
 */
export class ObserveIngest implements LogSink {
  readonly buffers: {
    logs: SignalBuffer<LogRow>;
    traces: SignalBuffer<SpanRow>;
    metrics: SignalBuffer<MetricPointRow>;
  };
  /** Days whose partition is known to exist, per table (a rotation dropping one clears it). */
  private readonly partitions = new Map<PartitionedTable, Set<string>>();
  /** Until the demand subscription is active every batch is published (no tail can be missed). */
  private demandKnown = false;
  private demandUntil = 0;
  private readonly demand: Promise<(() => Promise<void>) | null>;

  constructor(
    private readonly db: Db,
    private readonly pubsub: PubSub,
    private readonly sessions: SessionDirectory,
    private readonly options: IngestOptions,
    private readonly log: Logger,
  ) {
    this.buffers = {
      logs: new SignalBuffer(options.buffer, (rows) => this.flushLogs(rows)),
      traces: new SignalBuffer(options.buffer, (rows) => this.flushSpans(rows)),
      metrics: new SignalBuffer(options.buffer, (rows) => this.flushMetrics(rows)),
    };
    this.demand = pubsub
      .subscribe(tailDemandChannel(OBSERVE_LOGS_CHANNEL), () => {
        this.demandUntil = Date.now() + TAIL_DEMAND_TTL_MS;
      })
      .then(
        (unsubscribe) => {
          this.demandKnown = true;
          return unsubscribe;
        },
        (err) => {
          log.warn({ err }, 'live tail demand subscription failed; every log batch is published');
          return null;
        },
      );
  }

  /** Whether a flushed batch of log entries is published for live tails (some instance has one open). */
  get tailWanted(): boolean {
    return !this.demandKnown || Date.now() < this.demandUntil;
  }

  /** Forgets cached partitions (after a rotation dropped some). */
  forgetPartitions(): void {
    this.partitions.clear();
  }

  private async withPartitions(
    table: PartitionedTable,
    days: string[],
    write: () => Promise<void>,
  ): Promise<void> {
    const known = this.partitions.get(table) ?? new Set<string>();
    this.partitions.set(table, known);
    const missing = [...new Set(days)].filter((d) => !known.has(d));
    await ensurePartitions(this.db, table, missing);
    for (const d of missing) known.add(d);
    try {
      await write();
    } catch (err) {
      // 23514 "no partition of relation found for row": a rotation dropped a day this instance cached.
      if ((err as { code?: string }).code !== '23514') throw err;
      known.clear();
      await ensurePartitions(this.db, table, [...new Set(days)]);
      await write();
    }
  }

  private async flushLogs(rows: LogRow[]): Promise<void> {
    await this.withPartitions(
      'log_entries',
      rows.map((r) => dayOf(r.timestamp)),
      () => insertLogRows(this.db, rows),
    );
    // Durable now: live tail subscribers on any instance see the same view objects the query API returns.
    if (!this.tailWanted) return;
    this.pubsub.publish(OBSERVE_LOGS_CHANNEL, { entries: rows }).catch(() => {
      // Not logged: a log line here would be a log entry about publishing log entries.
    });
  }

  private async flushSpans(rows: SpanRow[]): Promise<void> {
    await this.withPartitions(
      'spans',
      rows.map((r) => dayOf(r.start_time)),
      async () => {
        await this.db.transaction().execute(async (trx) => {
          const fresh = await insertSpanRows(trx, rows);
          await upsertTraces(trx, fresh);
        });
      },
    );
  }

  private async flushMetrics(rows: MetricPointRow[]): Promise<void> {
    await this.withPartitions(
      'metric_samples',
      rows.map((r) => dayOf(r.timestamp)),
      () => this.db.transaction().execute((trx) => insertMetricPoints(trx, rows)),
    );
  }

  /** Converts a decoded export request, keeps the records the caller may write, waits until they are durable. */
  async ingest(
    signal: Signal,
    request: Decoded,
    defaultProjectId: string | null,
    mayWrite: WriteCheck,
  ): Promise<IngestResult> {
    const ctx: ConvertContext = {
      defaultProjectId,
      sessions: this.sessions,
      maxAgeMs: this.options.maxAgeMs,
      maxFutureMs: this.options.maxFutureMs,
      now: Date.now(),
    };
    const converted: Converted<{ project_id: string | null }> =
      signal === 'logs'
        ? await convertLogs(request, ctx)
        : signal === 'traces'
          ? await convertSpans(request, ctx)
          : await convertMetrics(request, ctx);
    const decisions = new Map<string | null, boolean>();
    for (const row of converted.rows) {
      if (!decisions.has(row.project_id)) decisions.set(row.project_id, await mayWrite(row.project_id));
    }
    const allowed = converted.rows.filter((r) => decisions.get(r.project_id));
    let rejected = converted.rejected;
    const errors = [...converted.errors];
    const denied = converted.rows.length - allowed.length;
    if (denied > 0) {
      rejected += denied;
      errors.push(`${denied} record(s) name a project this credential may not write (observe:write)`);
      if (allowed.length === 0 && converted.rejected === 0) {
        throw new AppError(
          403,
          'forbidden',
          "permission observe:write required on the records' project",
        ).because(OBSERVE_REASONS.nothingPermitted);
      }
    }
    await this.enqueue(signal, allowed);
    return { accepted: allowed.length, rejected, errorMessage: errors.join('; ') };
  }

  private async enqueue(signal: Signal, rows: { project_id: string | null }[]): Promise<void> {
    try {
      if (signal === 'logs') await this.buffers.logs.add(rows as LogRow[]);
      else if (signal === 'traces') await this.buffers.traces.add(rows as SpanRow[]);
      else await this.buffers.metrics.add(rows as MetricPointRow[]);
    } catch (err) {
      if (err instanceof AppError) throw err;
      this.log.error({ err, signal }, 'telemetry flush failed');
      throw new AppError(503, 'unavailable', 'the telemetry could not be written; retry later', [], {
        'retry-after': '2',
      }).because(OBSERVE_REASONS.storeUnavailable);
    }
  }

  /** LogSink: the platform's own producers (pipeline steps, deployer, agents, the platform log). */
  async write(entries: LogEntryInput[]): Promise<void> {
    const rows: LogRow[] = entries.map((e) => toLogRow(e));
    await this.buffers.logs.add(rows);
  }

  async close(): Promise<void> {
    await Promise.all([this.buffers.logs.close(), this.buffers.traces.close(), this.buffers.metrics.close()]);
    const unsubscribe = await this.demand;
    await unsubscribe?.().catch(() => {});
  }
}

const uuidOrNull = (v: string | null | undefined) => (v && isUuid(v) ? v : null);
const hexOrNull = (v: string | null | undefined, len: number) =>
  v && new RegExp(`^[0-9a-f]{${len}}$`).test(v) ? v : null;

function toLogRow(e: LogEntryInput): LogRow {
  const level = (logLevels as readonly string[]).includes(e.level) ? e.level : 'info';
  return {
    id: crypto.randomUUID(),
    timestamp: dateToIso(e.time ?? new Date()),
    trace_id: hexOrNull(e.traceId, 32),
    span_id: hexOrNull(e.spanId, 16),
    project_id: uuidOrNull(e.projectId),
    session_id: uuidOrNull(e.sessionId),
    user_id: uuidOrNull(e.userId),
    service: e.service,
    level,
    message: e.body.length > MAX_SINK_MESSAGE ? e.body.slice(0, MAX_SINK_MESSAGE) : e.body,
    attributes: { ...(e.attributes ?? {}), 'service.name': e.service },
  };
}
