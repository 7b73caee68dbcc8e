import { sql } from 'kysely';
import { decodeCursor, decodeTimeCursor } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { microsIso } from './attributes.js';
import { readMetadata, readParquetObject, readRows } from './parquet.js';
import type { LogFilter, LogView } from './queries.js';
import { COLD_TABLES, type ColdSignal } from './rotation.js';
import type { SpanFields } from './schemas.js';
import { logFilterMatcher } from './tail/filter.js';

/**
 * The cold tier's read side: catalogued Parquet files (observe_cold_files) chosen by time range and
 * project, row groups skipped by their time and project statistics, rows filtered in memory. Every
 * query that reaches past the hot window merges these rows with PostgreSQL's.
 */

export interface ColdReadStats {
  files: number;
  rowGroups: number;
  rowGroupsRead: number;
}

/** Time bounds in milliseconds (Parquet statistics are read at millisecond precision). */
export interface ColdBounds {
  minMs: number | undefined;
  maxMs: number | undefined;
}

export interface ColdScan {
  signal: ColdSignal;
  /** Rows with time in [from, to); files and row groups outside are not read. */
  from?: Date | undefined;
  to?: Date | undefined;
  /** A project id: files not listing it and row groups whose project range excludes it are skipped. */
  projectId?: string | null | undefined;
  columns: string[];
  /** 'desc': newest files and row groups first (searches); 'asc': oldest first (timelines). */
  order: 'desc' | 'asc';
  /**
   * Asked before each file and row group (in scan order): true ends the scan at a file, and skips the
   * rest of the file at a row group — the caller holds enough rows that nothing further can beat.
   */
  enough?: (bounds: ColdBounds) => boolean;
  /** Benchmarks: read every row group in range, without statistics-based skipping. */
  readEveryRowGroup?: boolean;
}

/** Statistics values as comparable text (uuids may come back as bytes). */
function statText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Uint8Array) {
    const hex = Buffer.from(v).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  return String(v);
}

function statMillis(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'bigint') return Number(v / 1000n);
  return undefined;
}

/**
 * The row groups of the catalogued files a scan reaches, in scan order, each as its rows (the
 * requested columns; times as bigint microseconds, json parsed). Statistics are milliseconds:
 * comparisons keep a millisecond of slack.
 */
export async function* coldRowGroups(
  db: Db,
  objects: ObjectStore,
  scan: ColdScan,
  stats: ColdReadStats = { files: 0, rowGroups: 0, rowGroupsRead: 0 },
): AsyncGenerator<{ bounds: ColdBounds; rows: Record<string, unknown>[] }> {
  const spec = COLD_TABLES.find((t) => t.signal === scan.signal);
  if (!spec) throw new Error(`no cold layout for ${scan.signal}`);
  const hasProject = spec.columns.some((c) => c.name === 'project_id');
  let q = db
    .selectFrom('observe_cold_files')
    .select(['object_key', 'min_time', 'max_time'])
    .where('signal', '=', scan.signal);
  if (scan.from) q = q.where('max_time', '>=', scan.from);
  if (scan.to) q = q.where('min_time', '<', scan.to);
  if (scan.projectId && hasProject) q = q.where(sql<boolean>`${scan.projectId}::uuid = any(project_ids)`);
  const files = await (scan.order === 'desc'
    ? q.orderBy('max_time', 'desc').orderBy('min_time', 'desc')
    : q.orderBy('min_time', 'asc').orderBy('max_time', 'asc')
  ).execute();
  const fromMs = scan.from?.getTime();
  const toMs = scan.to?.getTime();
  for (const file of files) {
    if (scan.enough?.({ minMs: file.min_time.getTime(), maxMs: file.max_time.getTime() })) return;
    const bytes = await readParquetObject(objects, file.object_key);
    if (!bytes) continue;
    stats.files += 1;
    const metadata = readMetadata(bytes);
    let rowStart = 0;
    const groups = metadata.row_groups.map((g) => {
      const start = rowStart;
      rowStart += Number(g.num_rows);
      const col = (name: string) =>
        g.columns.find((c) => c.meta_data?.path_in_schema?.[0] === name)?.meta_data?.statistics;
      const time = col(spec.time);
      const project = hasProject ? col('project_id') : undefined;
      return {
        start,
        end: rowStart,
        bounds: { minMs: statMillis(time?.min_value), maxMs: statMillis(time?.max_value) },
        minProject: statText(project?.min_value),
        maxProject: statText(project?.max_value),
        nulls: Number(project?.null_count ?? 0),
      };
    });
    stats.rowGroups += groups.length;
    if (scan.order === 'desc') groups.reverse();
    for (const g of groups) {
      const { minMs, maxMs } = g.bounds;
      if (!scan.readEveryRowGroup) {
        if (fromMs !== undefined && maxMs !== undefined && maxMs + 1 < fromMs) continue;
        if (toMs !== undefined && minMs !== undefined && minMs > toMs) continue;
        if (scan.projectId && hasProject) {
          if (g.minProject !== undefined && g.maxProject !== undefined) {
            if (scan.projectId < g.minProject || scan.projectId > g.maxProject) continue;
          } else if (g.nulls === g.end - g.start) continue;
        }
      }
      if (scan.enough?.(g.bounds)) break;
      stats.rowGroupsRead += 1;
      const rows = await readRows(bytes, {
        rowStart: g.start,
        rowEnd: g.end,
        columns: scan.columns,
        metadata,
      });
      yield { bounds: g.bounds, rows };
    }
  }
}

const LOG_COLUMNS = [
  'timestamp',
  'id',
  'trace_id',
  'span_id',
  'project_id',
  'session_id',
  'user_id',
  'service',
  'level',
  'message',
  'attributes',
];

const nullableText = (v: unknown) => (v === null || v === undefined ? null : (v as string));

function logViewOf(r: Record<string, unknown>): LogView {
  return {
    id: r.id as string,
    timestamp: microsIso(r.timestamp as bigint),
    trace_id: nullableText(r.trace_id),
    span_id: nullableText(r.span_id),
    project_id: nullableText(r.project_id),
    session_id: nullableText(r.session_id),
    user_id: nullableText(r.user_id),
    service: r.service as string,
    level: r.level as LogView['level'],
    message: r.message as string,
    attributes: (r.attributes as LogView['attributes']) ?? {},
  };
}

/** A log entry predicate in memory: the filter, its time range, and the query language's matcher. */
function logPredicate(f: LogFilter, extra?: (e: LogView) => boolean): (e: LogView) => boolean {
  const base = logFilterMatcher(f);
  const from = f.from ? microsIso(BigInt(f.from.getTime()) * 1000n) : undefined;
  const to = f.to ? microsIso(BigInt(f.to.getTime()) * 1000n) : undefined;
  return (e) =>
    (from === undefined || e.timestamp >= from) &&
    (to === undefined || e.timestamp < to) &&
    base(e) &&
    (extra === undefined || extra(e));
}

/** The `(timestamp, id)` log cursor (validated as the hot query validates it). */
function cursorParts(cursor: string): { at: string; id: string } {
  decodeTimeCursor(cursor);
  const [at, id] = decodeCursor(cursor, 2) as [string, string];
  return { at, id };
}

/**
 * The cold tier's part of a log search: newest first, at most `limit` rows after the cursor,
 * matching the filter and `options.matches` (the query language's matcher, a project check). Stops
 * once older row groups cannot beat what it holds.
 */
export async function searchColdLogs(
  db: Db,
  objects: ObjectStore,
  f: LogFilter,
  page: { limit: number; cursor?: string | undefined },
  options: {
    matches?: ((e: LogView) => boolean) | undefined;
    stats?: ColdReadStats;
    skipRowGroups?: boolean;
  } = {},
): Promise<LogView[]> {
  const { matches: extra, stats } = options;
  const cursor = page.cursor ? cursorParts(page.cursor) : null;
  const matches = logPredicate(f, extra);
  const found: LogView[] = [];
  const oldestHeldMs = () =>
    found.length >= page.limit ? Date.parse((found[page.limit - 1] as LogView).timestamp) : undefined;
  // Nothing newer than the cursor is wanted: files and row groups starting after it are not read.
  const cursorEnd = cursor ? Date.parse(cursor.at) + 1 : undefined;
  const to = cursorEnd !== undefined && (!f.to || cursorEnd < f.to.getTime()) ? new Date(cursorEnd) : f.to;
  const groups = coldRowGroups(
    db,
    objects,
    {
      signal: 'logs',
      from: f.from,
      to,
      projectId: f.projectId,
      columns: LOG_COLUMNS,
      order: 'desc',
      readEveryRowGroup: options.skipRowGroups === false,
      enough: ({ maxMs }) => {
        const oldest = oldestHeldMs();
        return oldest !== undefined && maxMs !== undefined && maxMs + 1 < oldest;
      },
    },
    stats,
  );
  for await (const { rows } of groups) {
    for (const r of rows) {
      const view = logViewOf(r);
      if (!matches(view)) continue;
      if (cursor && (view.timestamp > cursor.at || (view.timestamp === cursor.at && view.id >= cursor.id)))
        continue;
      found.push(view);
    }
    found.sort(newestFirst);
    if (found.length > page.limit) found.length = page.limit;
  }
  return found;
}

/** Counts by level and service of the cold log entries matching the filter (the summary's cold part). */
export async function countColdLogs(
  db: Db,
  objects: ObjectStore,
  f: LogFilter,
  extra?: (e: LogView) => boolean,
): Promise<{ service: string; level: LogView['level']; n: number }[]> {
  const matches = logPredicate(f, extra);
  const counts = new Map<string, { service: string; level: LogView['level']; n: number }>();
  const groups = coldRowGroups(db, objects, {
    signal: 'logs',
    from: f.from,
    to: f.to,
    projectId: f.projectId,
    columns: LOG_COLUMNS,
    order: 'desc',
  });
  for await (const { rows } of groups) {
    for (const r of rows) {
      const view = logViewOf(r);
      if (!matches(view)) continue;
      const key = `${view.level}\u0000${view.service}`;
      const c = counts.get(key) ?? { service: view.service, level: view.level, n: 0 };
      c.n += 1;
      counts.set(key, c);
    }
  }
  return [...counts.values()];
}

/** An ISO time with up to microsecond digits as microseconds since the epoch (a timeline cursor). */
export function textMicros(iso: string): bigint {
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? '';
  const micros = Number(fraction.padEnd(6, '0').slice(3, 6));
  return BigInt(Date.parse(iso)) * 1000n + BigInt(micros);
}

/** A row of a cold file as read: the requested columns, times as bigint microseconds. */
export type ColdRow = Record<string, unknown>;

/** Where and how much an oldest-first cold read looks (a trace's spans, a session's timeline). */
export interface ColdWindow {
  from: Date;
  to?: Date | undefined;
  /** Only rows after this time (microseconds since the epoch, exclusive: a timeline cursor). */
  afterMicros?: bigint | undefined;
  limit: number;
}

/**
 * The first `limit` rows of a signal in the window that pass `keep`, oldest first by (time, id);
 * stops once later row groups cannot come before the rows held.
 */
async function oldestColdRows(
  db: Db,
  objects: ObjectStore,
  signal: 'logs' | 'spans',
  window: ColdWindow,
  keep: (r: ColdRow) => boolean,
): Promise<ColdRow[]> {
  const time = signal === 'logs' ? 'timestamp' : 'start_time';
  const fromMicros = BigInt(window.from.getTime()) * 1000n;
  const startMicros =
    window.afterMicros !== undefined && window.afterMicros >= fromMicros
      ? window.afterMicros + 1n
      : fromMicros;
  const toMicros = window.to ? BigInt(window.to.getTime()) * 1000n : undefined;
  const at = (r: ColdRow) => r[time] as bigint;
  const found: ColdRow[] = [];
  const groups = coldRowGroups(db, objects, {
    signal,
    from: new Date(Number(startMicros / 1000n)),
    to: window.to,
    columns: signal === 'logs' ? LOG_COLUMNS : SPAN_COLUMNS,
    order: 'asc',
    enough: ({ minMs }) =>
      found.length >= window.limit &&
      minMs !== undefined &&
      BigInt(minMs - 1) * 1000n > at(found[window.limit - 1] as ColdRow),
  });
  for await (const { rows } of groups) {
    for (const r of rows) {
      const t = at(r);
      if (t < startMicros || (toMicros !== undefined && t >= toMicros) || !keep(r)) continue;
      found.push(r);
    }
    found.sort((a, b) => (at(a) !== at(b) ? (at(a) < at(b) ? -1 : 1) : String(a.id) < String(b.id) ? -1 : 1));
    if (found.length > window.limit) found.length = window.limit;
  }
  return found;
}

/** Cold log entries in the window passing `keep`, oldest first. */
export async function findColdLogs(
  db: Db,
  objects: ObjectStore,
  window: ColdWindow,
  keep: (r: ColdRow) => boolean,
): Promise<LogView[]> {
  return (await oldestColdRows(db, objects, 'logs', window, keep)).map(logViewOf);
}

/** A span of either tier as the trace view and the timeline read it. */
export interface ColdSpan extends SpanFields {
  id: string;
  trace_id: string;
  start_epoch_ms: number;
  end_epoch_ms: number;
  project_id: string | null;
  session_id: string | null;
}

const SPAN_COLUMNS = [
  'start_time',
  'id',
  'trace_id',
  'span_id',
  'parent_span_id',
  'name',
  'kind',
  'status_code',
  'status_message',
  'service',
  'project_id',
  'session_id',
  'end_time',
  'duration_ms',
  'attributes',
  'events',
  'links',
];

function spanOf(r: Record<string, unknown>): ColdSpan {
  const start = r.start_time as bigint;
  const end = r.end_time as bigint;
  return {
    id: r.id as string,
    trace_id: r.trace_id as string,
    span_id: r.span_id as string,
    parent_span_id: nullableText(r.parent_span_id),
    name: r.name as string,
    kind: r.kind as string,
    service: nullableText(r.service),
    status_code: r.status_code as string,
    status_message: nullableText(r.status_message),
    start_time: microsIso(start),
    end_time: microsIso(end),
    duration_ms: r.duration_ms as number,
    start_epoch_ms: Number(start) / 1000,
    end_epoch_ms: Number(end) / 1000,
    project_id: nullableText(r.project_id),
    session_id: nullableText(r.session_id),
    attributes: (r.attributes as Record<string, unknown>) ?? {},
    events: (r.events as unknown[]) ?? [],
    links: (r.links as unknown[]) ?? [],
  };
}

/** Cold spans starting in the window and passing `keep`, oldest first. */
export async function findColdSpans(
  db: Db,
  objects: ObjectStore,
  window: ColdWindow,
  keep: (r: ColdRow) => boolean,
): Promise<ColdSpan[]> {
  return (await oldestColdRows(db, objects, 'spans', window, keep)).map(spanOf);
}

/** Cold metric samples of the given series with time in [from, to), at most `limit`. */
export async function findColdSamples(
  db: Db,
  objects: ObjectStore,
  seriesIds: ReadonlySet<string>,
  range: { from: Date; to: Date },
  limit: number,
): Promise<
  {
    series_id: string;
    t: number;
    value: number | null;
    count: number | null;
    buckets: { bounds?: number[]; counts?: number[] } | null;
  }[]
> {
  const out: Awaited<ReturnType<typeof findColdSamples>> = [];
  const fromMicros = BigInt(range.from.getTime()) * 1000n;
  const toMicros = BigInt(range.to.getTime()) * 1000n;
  const groups = coldRowGroups(db, objects, {
    signal: 'metrics',
    from: range.from,
    to: range.to,
    columns: ['timestamp', 'series_id', 'value', 'count', 'buckets'],
    order: 'asc',
    enough: () => out.length >= limit,
  });
  for await (const { rows } of groups) {
    for (const r of rows) {
      const micros = r.timestamp as bigint;
      if (micros < fromMicros || micros >= toMicros) continue;
      if (!seriesIds.has(r.series_id as string)) continue;
      out.push({
        series_id: r.series_id as string,
        t: Number(micros) / 1000,
        value: (r.value as number | null) ?? null,
        count: r.count === null || r.count === undefined ? null : Number(r.count),
        buckets: (r.buckets as { bounds?: number[]; counts?: number[] } | null) ?? null,
      });
      if (out.length >= limit) break;
    }
  }
  return out;
}

export function newestFirst(a: LogView, b: LogView): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Hot and cold rows newest first, each entry once (a row is in one tier; the id settles any doubt). */
export function mergeLogs(hot: LogView[], cold: LogView[], limit: number): LogView[] {
  const seen = new Set<string>();
  const out: LogView[] = [];
  for (const e of [...hot, ...cold].sort(newestFirst)) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}
