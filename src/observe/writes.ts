import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import type { LogRow, MetricPointRow, SpanRow } from './records.js';

/** The partitioned tables and their time column (UTC-day partitions, see migration 0017). */
export const PARTITIONED = {
  log_entries: 'timestamp',
  spans: 'start_time',
  metric_samples: 'timestamp',
} as const;
export type PartitionedTable = keyof typeof PARTITIONED;

/** Creates the day partitions the rows need (idempotent; serialised across instances by the function). */
export async function ensurePartitions(db: DbOrTx, table: PartitionedTable, days: string[]): Promise<void> {
  if (days.length === 0) return;
  await sql`select observe_ensure_partition(${table}, d::date) from unnest(${days}::text[]) as d`.execute(db);
}

export function dayOf(iso: string): string {
  return iso.slice(0, 10);
}

const json = (v: unknown) => JSON.stringify(v);

/**
 * A batch of rows as one JSON text PostgreSQL can read back. JSON.stringify writes a lone surrogate
 * (and NUL) as a `\u` escape PostgreSQL refuses to turn into text, which would fail the whole batch:
 * they become U+FFFD (what the UTF-8 encoding of a text parameter does with a lone surrogate).
 * An escaped backslash before `u` (`\\u…`, a literal backslash in the data) is left alone.
 */
export function batchJson(rows: unknown[]): string {
  return JSON.stringify(rows).replace(
    /(?<!\\)((?:\\\\)*)\\u(?:d[89a-f][0-9a-f]{2}|0000)/g,
    (_m, pairs: string) => `${pairs}\\ufffd`,
  );
}

/**
 * One INSERT per batch: the rows travel as one JSON parameter (one native JSON.stringify, no
 * per-element array escaping) and are expanded server-side by json_to_recordset.
 */
export async function insertLogRows(db: DbOrTx, rows: LogRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`insert into log_entries
      (id, timestamp, trace_id, span_id, project_id, session_id, user_id, service, level, message, attributes)
    select id, timestamp, trace_id, span_id, project_id, session_id, user_id, service, level, message, attributes
    from json_to_recordset(${batchJson(rows)}::json) as r(
      id uuid, timestamp timestamptz, trace_id text, span_id text, project_id uuid, session_id uuid,
      user_id uuid, service text, level text, message text, attributes jsonb)`.execute(db);
}

/** Inserts spans (a re-sent span is skipped) and returns the ones that are new. */
export async function insertSpanRows(db: DbOrTx, rows: SpanRow[]): Promise<SpanRow[]> {
  if (rows.length === 0) return [];
  const inserted = await sql<{ id: string }>`insert into spans
      (id, trace_id, span_id, parent_span_id, name, kind, status_code, status_message, service, project_id,
       session_id, user_id, start_time, end_time, duration_ms, attributes, resource_attributes, events, links)
    select * from unnest(
      ${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.trace_id)}::text[], ${rows.map((r) => r.span_id)}::text[],
      ${rows.map((r) => r.parent_span_id)}::text[], ${rows.map((r) => r.name)}::text[], ${rows.map((r) => r.kind)}::text[],
      ${rows.map((r) => r.status_code)}::text[], ${rows.map((r) => r.status_message)}::text[],
      ${rows.map((r) => r.service)}::text[], ${rows.map((r) => r.project_id)}::uuid[],
      ${rows.map((r) => r.session_id)}::uuid[], ${rows.map((r) => r.user_id)}::uuid[],
      ${rows.map((r) => r.start_time)}::timestamptz[], ${rows.map((r) => r.end_time)}::timestamptz[],
      ${rows.map((r) => r.duration_ms)}::float8[], ${rows.map((r) => json(r.attributes))}::jsonb[],
      ${rows.map((r) => json(r.resource_attributes))}::jsonb[], ${rows.map((r) => json(r.events))}::jsonb[],
      ${rows.map((r) => json(r.links))}::jsonb[])
    on conflict (trace_id, span_id, start_time) do nothing
    returning id`.execute(db);
  const ids = new Set(inserted.rows.map((r) => r.id));
  return rows.filter((r) => ids.has(r.id));
}

interface TraceAggregate {
  trace_id: string;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  root_service: string | null;
  root_name: string | null;
  start_time: string;
  end_time: string;
  span_count: number;
  error_count: number;
}

/**
 * Folds new spans into their traces' summary rows, one per (trace, project): another project's spans
 * under the same trace id never touch this project's row (sorted: no deadlock between instances).
 */
export async function upsertTraces(db: DbOrTx, spans: SpanRow[]): Promise<void> {
  const byTrace = new Map<string, TraceAggregate>();
  for (const s of spans) {
    const key = `${s.trace_id} ${s.project_id ?? ''}`;
    const t = byTrace.get(key) ?? {
      trace_id: s.trace_id,
      project_id: s.project_id,
      session_id: null,
      user_id: null,
      root_service: null,
      root_name: null,
      start_time: s.start_time,
      end_time: s.end_time,
      span_count: 0,
      error_count: 0,
    };
    t.session_id ??= s.session_id;
    t.user_id ??= s.user_id;
    if (!s.parent_span_id) {
      t.root_service = s.service;
      t.root_name = s.name;
    }
    if (s.start_time < t.start_time) t.start_time = s.start_time;
    if (s.end_time > t.end_time) t.end_time = s.end_time;
    t.span_count += 1;
    if (s.status_code === 'error') t.error_count += 1;
    byTrace.set(key, t);
  }
  const rows = [...byTrace.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, t]) => t);
  if (rows.length === 0) return;
  await sql`insert into traces
      (trace_id, project_id, session_id, user_id, root_service, root_name, start_time, end_time, duration_ms, span_count, error_count)
    select t.trace_id, t.project_id, t.session_id, t.user_id, t.root_service, t.root_name, t.start_time, t.end_time,
      extract(epoch from (t.end_time - t.start_time)) * 1000, t.span_count, t.error_count
    from unnest(
      ${rows.map((r) => r.trace_id)}::text[], ${rows.map((r) => r.project_id)}::uuid[],
      ${rows.map((r) => r.session_id)}::uuid[], ${rows.map((r) => r.user_id)}::uuid[],
      ${rows.map((r) => r.root_service)}::text[], ${rows.map((r) => r.root_name)}::text[],
      ${rows.map((r) => r.start_time)}::timestamptz[], ${rows.map((r) => r.end_time)}::timestamptz[],
      ${rows.map((r) => r.span_count)}::int[], ${rows.map((r) => r.error_count)}::int[])
      as t(trace_id, project_id, session_id, user_id, root_service, root_name, start_time, end_time, span_count, error_count)
    on conflict (trace_id, project_id) do update set
      session_id = coalesce(traces.session_id, excluded.session_id),
      user_id = coalesce(traces.user_id, excluded.user_id),
      root_service = coalesce(excluded.root_service, traces.root_service),
      root_name = coalesce(excluded.root_name, traces.root_name),
      start_time = least(traces.start_time, excluded.start_time),
      end_time = greatest(traces.end_time, excluded.end_time),
      duration_ms = extract(epoch from (greatest(traces.end_time, excluded.end_time) - least(traces.start_time, excluded.start_time))) * 1000,
      span_count = traces.span_count + excluded.span_count,
      error_count = traces.error_count + excluded.error_count`.execute(db);
}

/** Stable identity text of labels (keys sorted), matching jsonb equality. */
export function labelsKey(projectId: string | null, name: string, labels: Record<string, string>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((k) => [k, labels[k]]);
  return JSON.stringify([projectId, name, sorted]);
}

/** Upserts the series by (project, name, labels) and appends the samples (a re-sent sample is skipped). */
export async function insertMetricPoints(db: DbOrTx, points: MetricPointRow[]): Promise<void> {
  if (points.length === 0) return;
  const series = new Map<string, MetricPointRow>();
  for (const p of points) {
    const key = labelsKey(p.project_id, p.name, p.labels);
    const known = series.get(key);
    if (!known || known.timestamp < p.timestamp) series.set(key, p);
  }
  const keys = [...series.keys()].sort();
  const latest = keys.map((k) => series.get(k) as MetricPointRow);
  const upserted = await sql<{
    id: string;
    project_id: string | null;
    name: string;
    labels: Record<string, string>;
  }>`
    insert into metric_series (project_id, name, labels, type, unit, description, service, temporality, last_value, last_sample_at)
    select * from unnest(
      ${latest.map((p) => p.project_id)}::uuid[], ${latest.map((p) => p.name)}::text[],
      ${latest.map((p) => json(p.labels))}::jsonb[], ${latest.map((p) => p.type)}::text[],
      ${latest.map((p) => p.unit)}::text[], ${latest.map((p) => p.description)}::text[],
      ${latest.map((p) => p.service)}::text[], ${latest.map((p) => p.temporality)}::text[],
      ${latest.map((p) => p.value)}::float8[], ${latest.map((p) => p.timestamp)}::timestamptz[])
    on conflict on constraint metric_series_identity_key do update set
      last_value = case when metric_series.last_sample_at is null or excluded.last_sample_at >= metric_series.last_sample_at
        then excluded.last_value else metric_series.last_value end,
      last_sample_at = greatest(metric_series.last_sample_at, excluded.last_sample_at),
      temporality = coalesce(metric_series.temporality, excluded.temporality)
    returning id, project_id, name, labels`.execute(db);
  const ids = new Map(upserted.rows.map((r) => [labelsKey(r.project_id, r.name, r.labels), r.id]));
  const samples = points
    .map((p) => ({ ...p, series_id: ids.get(labelsKey(p.project_id, p.name, p.labels)) as string }))
    // One order for every instance: concurrent inserts of the same keys wait instead of deadlocking.
    .sort((a, b) =>
      a.series_id === b.series_id ? (a.timestamp < b.timestamp ? -1 : 1) : a.series_id < b.series_id ? -1 : 1,
    );
  await sql`insert into metric_samples (series_id, timestamp, value, count, sum, buckets)
    select * from unnest(
      ${samples.map((s) => s.series_id)}::uuid[], ${samples.map((s) => s.timestamp)}::timestamptz[],
      ${samples.map((s) => s.value)}::float8[], ${samples.map((s) => s.count)}::bigint[],
      ${samples.map((s) => s.sum)}::float8[], ${samples.map((s) => (s.buckets ? json(s.buckets) : null))}::jsonb[])
    on conflict (series_id, timestamp) do nothing`.execute(db);
}
