import { type RawBuilder, sql } from 'kysely';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { type ColdSpan, findColdSpans, mergeLogs, searchColdLogs } from './cold.js';
import { findLogRows, type LogView } from './queries.js';
import type { SpanView } from './schemas.js';

export interface TraceFilter {
  projectId?: string | null;
  service?: string;
  sessionId?: string;
  from?: Date;
  to?: Date;
  minDurationMs?: number;
  errorsOnly?: boolean;
}

export interface TraceSummaryView {
  trace_id: string;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  root_service: string | null;
  root_name: string | null;
  start_time: string;
  end_time: string;
  duration_ms: number;
  span_count: number;
  error_count: number;
}

const iso = (column: string) =>
  sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export async function listTraces(
  db: Db,
  f: TraceFilter,
  page: { limit: number; cursor?: string | undefined },
): Promise<Page<TraceSummaryView>> {
  let q = db
    .selectFrom('traces')
    .select([
      'id',
      'trace_id',
      'project_id',
      'session_id',
      'user_id',
      'root_service',
      'root_name',
      iso('start_time').as('start_text'),
      iso('end_time').as('end_text'),
      'duration_ms',
      'span_count',
      'error_count',
    ]);
  if (f.projectId !== undefined)
    q = f.projectId === null ? q.where('project_id', 'is', null) : q.where('project_id', '=', f.projectId);
  if (f.service) q = q.where('root_service', '=', f.service);
  if (f.sessionId) q = q.where('session_id', '=', f.sessionId);
  if (f.from) q = q.where('start_time', '>=', f.from);
  if (f.to) q = q.where('start_time', '<', f.to);
  if (f.minDurationMs !== undefined) q = q.where('duration_ms', '>=', f.minDurationMs);
  if (f.errorsOnly) q = q.where('error_count', '>', 0);
  return pageByTime(q, { time: 'start_time', id: 'id' }, page, (r) => ({
    trace_id: r.trace_id,
    project_id: r.project_id,
    session_id: r.session_id,
    user_id: r.user_id,
    root_service: r.root_service,
    root_name: r.root_name,
    start_time: r.start_text,
    end_time: r.end_text,
    duration_ms: r.duration_ms,
    span_count: r.span_count,
    error_count: r.error_count,
  }));
}

export interface TraceView {
  trace_id: string;
  project_id: string | null;
  session_id: string | null;
  start_time: string;
  end_time: string;
  duration_ms: number;
  span_count: number;
  error_count: number;
  spans: SpanView[];
  logs: LogView[];
}

const MAX_SPANS = 5000;
/** Log entries of a trace are looked for this long around its spans in the cold tier. */
const TRACE_LOG_SLACK_MS = 3_600_000;

/** Whether the caller may read a project's telemetry (null: records without a project). */
export type ProjectReader = (projectId: string | null) => Promise<boolean>;

/** The projects of a trace the caller may read, as a SQL condition and a predicate on cold rows. */
interface Readable {
  ids: (string | null)[];
  sql: RawBuilder<boolean>;
  has: (projectId: unknown) => boolean;
}

/**
 * Which of the projects holding records of the trace (its summary rows — one per project, kept past
 * the move to the cold tier — and its hot spans and log entries) the caller may read; and the time
 * range of the readable projects' summaries (where its cold spans lie).
 */
async function readableProjects(
  db: Db,
  traceId: string,
  canRead: ProjectReader,
): Promise<{ readable: Readable; from: Date | null; to: Date | null }> {
  const r = await sql<{ project_id: string | null; start_time: Date | null; end_time: Date | null }>`
    select project_id, start_time, end_time from traces where trace_id = ${traceId}
    union all (select distinct project_id, null::timestamptz, null::timestamptz from spans where trace_id = ${traceId})
    union all (select distinct project_id, null::timestamptz, null::timestamptz from log_entries where trace_id = ${traceId})`.execute(
    db,
  );
  const ids: (string | null)[] = [];
  for (const id of new Set(r.rows.map((row) => row.project_id))) if (await canRead(id)) ids.push(id);
  const uuids = ids.filter((id): id is string => id !== null);
  const withNull = ids.includes(null);
  let from: Date | null = null;
  let to: Date | null = null;
  for (const row of r.rows) {
    if (!ids.includes(row.project_id) || !row.start_time || !row.end_time) continue;
    if (!from || row.start_time < from) from = row.start_time;
    if (!to || row.end_time > to) to = row.end_time;
  }
  return {
    readable: {
      ids,
      sql: sql<boolean>`(project_id = any(${uuids}::uuid[])${withNull ? sql` or project_id is null` : sql``})`,
      has: (projectId) => ids.includes((projectId as string | null | undefined) ?? null),
    },
    from,
    to,
  };
}

/** A trace's readable spans in both tiers: the hot rows, and the cold files its summaries' time range reaches. */
async function traceSpans(
  db: Db,
  objects: ObjectStore,
  traceId: string,
  { readable, from, to }: Awaited<ReturnType<typeof readableProjects>>,
): Promise<ColdSpan[]> {
  const r = await sql<ColdSpan>`select id::text as id, trace_id, span_id, parent_span_id, name, kind, service,
      status_code, status_message, ${iso('start_time')} as start_time, ${iso('end_time')} as end_time, duration_ms,
      extract(epoch from start_time) * 1000 as start_epoch_ms, extract(epoch from end_time) * 1000 as end_epoch_ms,
      project_id, session_id, attributes, events, links
    from spans where trace_id = ${traceId} and ${readable.sql} order by start_time, span_id limit ${MAX_SPANS}`.execute(
    db,
  );
  const hot = r.rows.map((s) => ({
    ...s,
    start_epoch_ms: Number(s.start_epoch_ms),
    end_epoch_ms: Number(s.end_epoch_ms),
  }));
  if (!from || !to || hot.length >= MAX_SPANS) return hot;
  const cold = await findColdSpans(
    db,
    objects,
    { from, to: new Date(to.getTime() + 1), limit: MAX_SPANS },
    (row) => row.trace_id === traceId && readable.has(row.project_id),
  );
  if (cold.length === 0) return hot;
  const ids = new Set(hot.map((s) => s.id));
  return [...hot, ...cold.filter((s) => !ids.has(s.id))]
    .sort((a, b) => a.start_epoch_ms - b.start_epoch_ms || (a.span_id < b.span_id ? -1 : 1))
    .slice(0, MAX_SPANS);
}

/**
 * One trace as `canRead` may see it. A trace id is not a secret (services pass it on to the ones they
 * call, and any writer can name any id), so a trace may hold several projects' records: only the
 * spans and log entries of readable projects are read (another project's records can neither be seen
 * nor crowd the readable ones out of the limits), and a trace with none is not found.
 */
export async function getTrace(
  db: Db,
  objects: ObjectStore,
  traceId: string,
  logLimit: number,
  canRead: ProjectReader,
): Promise<TraceView | null> {
  const projects = await readableProjects(db, traceId, canRead);
  if (projects.readable.ids.length === 0) return null;
  const rows = await traceSpans(db, objects, traceId, projects);
  if (rows.length === 0) return null;
  const t0 = Math.min(...rows.map((s) => s.start_epoch_ms));
  const t1 = Math.max(...rows.map((s) => s.end_epoch_ms));
  const ids = new Set(rows.map((s) => s.span_id));
  const children = new Map<string | null, typeof rows>();
  for (const s of rows) {
    // A span whose parent was not received is shown as a root (the tree stays complete).
    const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : null;
    const list = children.get(parent) ?? [];
    list.push(s);
    children.set(parent, list);
  }
  const spans: SpanView[] = [];
  const visited = new Set<string>();
  const visit = (list: ColdSpan[], depth: number) => {
    for (const s of list) {
      if (visited.has(s.id)) continue;
      visited.add(s.id);
      const { id: _id, trace_id, start_epoch_ms, end_epoch_ms, project_id, session_id, ...fields } = s;
      spans.push({ ...fields, offset_ms: start_epoch_ms - t0, depth });
      if (depth < 200) visit(children.get(s.span_id) ?? [], depth + 1);
    }
  };
  visit(children.get(null) ?? [], 0);
  // Spans deeper than 200 or in a cycle of parent links (no root): shown as roots, never dropped.
  for (const s of rows) if (!visited.has(s.id)) visit([s], 0);
  const first = rows[0] as (typeof rows)[number];
  const window = {
    from: new Date(t0 - TRACE_LOG_SLACK_MS),
    to: new Date(t1 + TRACE_LOG_SLACK_MS),
  };
  const { readable } = projects;
  const logs = mergeLogs(
    await findLogRows(db, { traceId }, { limit: logLimit }, readable.sql),
    // A cold entry of a project with no summary or hot record of this trace counts as unreadable.
    await searchColdLogs(
      db,
      objects,
      { traceId, ...window },
      { limit: logLimit },
      { matches: (e) => readable.has(e.project_id) },
    ),
    logLimit,
  );
  return {
    trace_id: traceId,
    project_id: rows.find((s) => s.project_id)?.project_id ?? null,
    session_id: rows.find((s) => s.session_id)?.session_id ?? null,
    start_time: first.start_time,
    end_time: rows.reduce((a, s) => (s.end_epoch_ms > a.end_epoch_ms ? s : a), first).end_time,
    duration_ms: t1 - t0,
    span_count: rows.length,
    error_count: rows.filter((s) => s.status_code === 'error').length,
    spans,
    logs,
  };
}
