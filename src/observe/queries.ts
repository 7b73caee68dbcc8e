import { type RawBuilder, sql } from 'kysely';
import { afterTimeCursor, encodeCursor, type Page } from '../core/pagination.js';
import type { DbOrTx } from '../store/db.js';
import { type LogLevel, logLevels } from '../store/schema.js';
import type { LogRow } from './records.js';

/** The log search's filters (all optional; `projectId: null` means records without a project). */
export interface LogFilter {
  projectId?: string | null;
  sessionId?: string;
  traceId?: string;
  service?: string;
  /** Level ≥ this one. */
  minLevel?: LogLevel;
  from?: Date;
  to?: Date;
  /** Substring of the message, case-insensitive (pg_trgm index). */
  q?: string;
  /** attributes[key] (as text) = value, all of them. */
  attributes?: [string, string][];
}

/** The view of a log entry: the API's item, and what `observe.logs` publishes. */
export type LogView = LogRow;

const TIME_TEXT = sql`to_char(timestamp at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** `%`, `_` and `\` match themselves in the search text. */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export function levelsAtLeast(level: LogLevel): LogLevel[] {
  return logLevels.slice(logLevels.indexOf(level));
}

/** The WHERE conditions of a log filter (each a bound-parameter fragment). */
export function logConditions(f: LogFilter): RawBuilder<boolean>[] {
  const c: RawBuilder<boolean>[] = [];
  if (f.projectId !== undefined) {
    c.push(
      f.projectId === null
        ? sql<boolean>`project_id is null`
        : sql<boolean>`project_id = ${f.projectId}::uuid`,
    );
  }
  if (f.sessionId) c.push(sql<boolean>`session_id = ${f.sessionId}::uuid`);
  if (f.traceId) c.push(sql<boolean>`trace_id = ${f.traceId}`);
  if (f.service !== undefined) c.push(sql<boolean>`service = ${f.service}`);
  if (f.minLevel && f.minLevel !== 'trace')
    c.push(sql<boolean>`level = any(${levelsAtLeast(f.minLevel)}::text[])`);
  if (f.from) c.push(sql<boolean>`timestamp >= ${f.from}`);
  if (f.to) c.push(sql<boolean>`timestamp < ${f.to}`);
  if (f.q) c.push(sql<boolean>`message ilike ${likePattern(f.q)}`);
  for (const [key, value] of f.attributes ?? []) c.push(sql<boolean>`attributes ->> ${key} = ${value}`);
  return c;
}

export function whereAll(conditions: RawBuilder<boolean>[]): RawBuilder<boolean> {
  return conditions.length === 0 ? sql<boolean>`true` : sql<boolean>`${sql.join(conditions, sql` and `)}`;
}

/**
 * Up to `limit` log rows matching the filter, newest first, after the `(timestamp, id)` cursor.
 * `extraWhere` is AND-ed in (the query language's compiled fragment, bound parameters only).
 */
export async function findLogRows(
  db: DbOrTx,
  filter: LogFilter,
  page: { limit: number; cursor?: string | undefined },
  extraWhere?: RawBuilder<boolean>,
): Promise<LogView[]> {
  const conditions = logConditions(filter);
  if (extraWhere) conditions.push(sql<boolean>`(${extraWhere})`);
  if (page.cursor) conditions.push(afterTimeCursor(page.cursor, { time: 'timestamp', id: 'id' }, 'desc'));
  const rows =
    await sql<LogView>`select id, ${TIME_TEXT} as timestamp, trace_id, span_id, project_id, session_id,
      user_id, service, level, message, attributes
    from log_entries where ${whereAll(conditions)}
    order by timestamp desc, id desc limit ${page.limit}`.execute(db);
  return rows.rows;
}

/** `limit + 1` rows (newest first) as a page: the extra one only tells that there is more. */
export function logPageOf(rows: LogView[], limit: number): Page<LogView> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items, next_cursor: more && last ? encodeCursor([last.timestamp, last.id]) : null };
}

export interface LogSummary {
  total: number;
  by_level: Record<LogLevel, number>;
  by_service: { service: string; count: number }[];
}

export interface LogCount {
  service: string;
  level: LogLevel;
  n: number;
}

/** The hot tier's counts of matching entries by service and level. */
export async function countLogs(
  db: DbOrTx,
  filter: LogFilter,
  extraWhere?: RawBuilder<boolean>,
): Promise<LogCount[]> {
  const conditions = logConditions(filter);
  if (extraWhere) conditions.push(sql<boolean>`(${extraWhere})`);
  const rows = await sql<LogCount>`
    select service, level, count(*)::int as n from log_entries where ${whereAll(conditions)} group by service, level`.execute(
    db,
  );
  return rows.rows;
}

/** Counts by level and by service (top 50) of the counted entries (of either tier, or both). */
export function summaryOf(counts: LogCount[]): LogSummary {
  const byLevel = Object.fromEntries(logLevels.map((l) => [l, 0])) as Record<LogLevel, number>;
  const byService = new Map<string, number>();
  let total = 0;
  for (const r of counts) {
    byLevel[r.level] += r.n;
    byService.set(r.service, (byService.get(r.service) ?? 0) + r.n);
    total += r.n;
  }
  const services = [...byService.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 50)
    .map(([service, count]) => ({ service, count }));
  return { total, by_level: byLevel, by_service: services };
}

/** agent_sessions is the agents module's table: read here, never written. */
export async function lookupAgentSession(
  db: DbOrTx,
  id: string,
): Promise<{ projectId: string; userId: string } | null> {
  const r = await sql<{ project_id: string; user_id: string }>`
    select project_id, user_id from agent_sessions where id = ${id}::uuid`.execute(db);
  const row = r.rows[0];
  return row ? { projectId: row.project_id, userId: row.user_id } : null;
}
