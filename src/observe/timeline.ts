import { sql } from 'kysely';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { type ColdRow, findColdLogs, findColdSpans, textMicros } from './cold.js';

export interface TimelineItem {
  kind: 'log' | 'span' | 'agent_event';
  time: string;
  id: string;
  /** The log message, the span name, or the agent message's content (first 2000 characters). */
  title: string;
  service: string | null;
  level: string | null;
  duration_ms: number | null;
  /** Log attributes, span ids and status, or the agent message's role/kind/metadata. */
  detail: Record<string, unknown>;
}

const T = (c: string) =>
  sql<string>`to_char(${sql.ref(c)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * A session's logs, spans and agent events (agent_messages, read-only: the agents module's table)
 * merged by time, oldest first, from `after` (exclusive), at most `limit`.
 */
export async function sessionTimeline(
  db: Db,
  objects: ObjectStore,
  sessionId: string,
  /**
   * The session's project (the one the caller was authorized for): a session id is not a secret and
   * any writer may name it, so records of other projects carrying it are not part of the timeline.
   */
  projectId: string | null,
  after: string | undefined,
  limit: number,
): Promise<{ items: TimelineItem[]; next_cursor: string | null }> {
  const since = after ? sql`and t > ${after}::timestamptz` : sql``;
  const ours = sql`session_id = ${sessionId}::uuid and project_id is not distinct from ${projectId}::uuid`;
  const logs =
    await sql<TimelineItem>`select 'log' as kind, time, id, title, service, level, null::float8 as duration_ms, detail from (
      select ${T('timestamp')} as time, timestamp as t, id::text as id, left(message, 2000) as title, service, level,
        jsonb_build_object('trace_id', trace_id, 'span_id', span_id, 'attributes', attributes) as detail
      from log_entries where ${ours}) x where true ${since} order by t limit ${limit + 1}`.execute(db);
  const spans =
    await sql<TimelineItem>`select 'span' as kind, time, id, title, service, null as level, duration_ms, detail from (
      select ${T('start_time')} as time, start_time as t, id::text as id, name as title, service, duration_ms,
        jsonb_build_object('trace_id', trace_id, 'span_id', span_id, 'parent_span_id', parent_span_id, 'status_code', status_code) as detail
      from spans where ${ours}) x where true ${since} order by t limit ${limit + 1}`.execute(db);
  const events =
    await sql<TimelineItem>`select 'agent_event' as kind, time, id, title, null as service, null as level,
      null::float8 as duration_ms, detail from (
      select ${T('created_at')} as time, created_at as t, id::text as id, left(content, 2000) as title,
        jsonb_build_object('role', role, 'kind', kind, 'seq', seq, 'metadata', metadata) as detail
      from agent_messages where session_id = ${sessionId}::uuid) x where true ${since} order by t limit ${limit + 1}`.execute(
      db,
    );
  const cold = await coldTimeline(db, objects, sessionId, projectId, after, limit);
  const seen = new Set([...logs.rows, ...spans.rows].map((r) => r.id));
  const merged = [...logs.rows, ...spans.rows, ...events.rows, ...cold.filter((r) => !seen.has(r.id))].sort(
    (a, b) => (a.time === b.time ? a.id.localeCompare(b.id) : a.time < b.time ? -1 : 1),
  );
  const items = merged.slice(0, limit);
  const more = merged.length > limit;
  return { items, next_cursor: more ? (items[items.length - 1]?.time ?? null) : null };
}

/** Cold-tier telemetry is looked for this long around a session's known life. */
const SESSION_SLACK_MS = 3_600_000;

/**
 * The session's logs and spans in the cold tier. The files are chosen by time: the session's life
 * (agent_sessions: created → finished, or still open), else the span range of its traces; a session
 * known by neither (logs only, all cold) has no window and no cold part.
 */
async function coldTimeline(
  db: Db,
  objects: ObjectStore,
  sessionId: string,
  projectId: string | null,
  after: string | undefined,
  limit: number,
): Promise<TimelineItem[]> {
  const known = await sql<{ from: Date | null; to: Date | null; open: boolean }>`
    select min(f) as from, max(t) as to, bool_or(open) as open from (
      select created_at as f, finished_at as t, finished_at is null as open from agent_sessions where id = ${sessionId}::uuid
      union all select start_time, end_time, false from traces where session_id = ${sessionId}::uuid) x`.execute(
    db,
  );
  const row = known.rows[0];
  if (!row?.from) return [];
  const window = {
    from: new Date(row.from.getTime() - SESSION_SLACK_MS),
    to: row.open || !row.to ? undefined : new Date(row.to.getTime() + SESSION_SLACK_MS),
    afterMicros: after === undefined ? undefined : textMicros(after),
    limit: limit + 1,
  };
  const ours = (r: ColdRow) => r.session_id === sessionId && (r.project_id ?? null) === projectId;
  const logs = await findColdLogs(db, objects, window, ours);
  const spans = await findColdSpans(db, objects, window, ours);
  return [
    ...logs.map(
      (l): TimelineItem => ({
        kind: 'log',
        time: l.timestamp,
        id: l.id,
        title: l.message.slice(0, 2000),
        service: l.service,
        level: l.level,
        duration_ms: null,
        detail: { trace_id: l.trace_id, span_id: l.span_id, attributes: l.attributes },
      }),
    ),
    ...spans.map(
      (s): TimelineItem => ({
        kind: 'span',
        time: s.start_time,
        id: s.id,
        title: s.name,
        service: s.service,
        level: null,
        duration_ms: s.duration_ms,
        detail: {
          trace_id: s.trace_id,
          span_id: s.span_id,
          parent_span_id: s.parent_span_id,
          status_code: s.status_code,
        },
      }),
    ),
  ];
}

/** The session's project: from agent_sessions, else from its telemetry. undefined: nothing known of it. */
export async function sessionProject(db: Db, sessionId: string): Promise<string | null | undefined> {
  const r = await sql<{ project_id: string | null }>`
    select project_id from agent_sessions where id = ${sessionId}::uuid
    union all (select project_id from log_entries where session_id = ${sessionId}::uuid limit 1)
    union all (select project_id from spans where session_id = ${sessionId}::uuid limit 1)
    union all (select project_id from traces where session_id = ${sessionId}::uuid limit 1)
    limit 1`.execute(db);
  return r.rows.length === 0 ? undefined : (r.rows[0]?.project_id ?? null);
}
