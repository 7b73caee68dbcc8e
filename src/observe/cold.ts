import { sql } from 'kysely';
import { decodeTimeCursor } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { microsIso } from './attributes.js';
import { readMetadata, readRows } from './parquet.js';
import { type LogFilter, type LogView, levelsAtLeast } from './queries.js';

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

export interface ColdReadStats {
  files: number;
  rowGroups: number;
  rowGroupsRead: number;
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

async function download(objects: ObjectStore, key: string): Promise<Uint8Array | null> {
  const got = await objects.get(key);
  if (!got) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of got.body) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

function matches(
  row: LogView,
  f: LogFilter,
  levels: Set<string> | null,
  cursor: { at: string; id: string } | null,
): boolean {
  if (f.projectId !== undefined && row.project_id !== f.projectId) return false;
  if (f.sessionId && row.session_id !== f.sessionId) return false;
  if (f.traceId && row.trace_id !== f.traceId) return false;
  if (f.service !== undefined && row.service !== f.service) return false;
  if (levels && !levels.has(row.level)) return false;
  if (f.from && row.timestamp < microsIso(BigInt(f.from.getTime()) * 1000n)) return false;
  if (f.to && row.timestamp >= microsIso(BigInt(f.to.getTime()) * 1000n)) return false;
  if (f.q && !row.message.toLowerCase().includes(f.q.toLowerCase())) return false;
  for (const [k, v] of f.attributes ?? []) {
    const a = row.attributes[k];
    if (a === undefined || (typeof a === 'string' ? a : JSON.stringify(a)) !== v) return false;
  }
  if (cursor && (row.timestamp > cursor.at || (row.timestamp === cursor.at && row.id >= cursor.id)))
    return false;
  return true;
}

/**
 * The cold tier's part of a log search: catalogued Parquet files overlapping the time range (and
 * holding the project), row groups skipped by their time and project statistics, newest first,
 * at most `limit` rows. Stops once older row groups cannot beat what it holds.
 */
export async function searchColdLogs(
  db: Db,
  objects: ObjectStore,
  f: LogFilter,
  page: { limit: number; cursor?: string | undefined },
  stats: ColdReadStats = { files: 0, rowGroups: 0, rowGroupsRead: 0 },
  options: { skipRowGroups?: boolean } = {},
): Promise<LogView[]> {
  const cursor = page.cursor ? decodeTimeCursor(page.cursor) && cursorParts(page.cursor) : null;
  let q = db.selectFrom('observe_cold_files').select(['object_key', 'max_time']).where('signal', '=', 'logs');
  if (f.from) q = q.where('max_time', '>=', f.from);
  if (f.to) q = q.where('min_time', '<', f.to);
  if (cursor) q = q.where('min_time', '<=', sql<Date>`${cursor.at}::timestamptz`);
  if (f.projectId) q = q.where(sql<boolean>`${f.projectId}::uuid = any(project_ids)`);
  const files = await q.orderBy('max_time', 'desc').execute();
  const levels = f.minLevel && f.minLevel !== 'trace' ? new Set<string>(levelsAtLeast(f.minLevel)) : null;
  const found: LogView[] = [];
  const skip = options.skipRowGroups !== false;
  for (const file of files) {
    // Newest files first: once `limit` rows are held, a file ending before the oldest of them cannot add any.
    const oldest = found.length >= page.limit ? found[page.limit - 1] : undefined;
    if (oldest && file.max_time.getTime() < Date.parse(oldest.timestamp) - 1) break;
    const bytes = await download(objects, file.object_key);
    if (!bytes) continue;
    stats.files += 1;
    const meta = readMetadata(bytes);
    let rowStart = 0;
    const groups = meta.row_groups.map((g) => {
      const start = rowStart;
      rowStart += Number(g.num_rows);
      const col = (name: string) =>
        g.columns.find((c) => c.meta_data?.path_in_schema?.[0] === name)?.meta_data?.statistics;
      const time = col('timestamp');
      const project = col('project_id');
      return {
        start,
        end: rowStart,
        minMs: statMillis(time?.min_value),
        maxMs: statMillis(time?.max_value),
        minProject: statText(project?.min_value),
        maxProject: statText(project?.max_value),
        nulls: Number(project?.null_count ?? 0),
      };
    });
    stats.rowGroups += groups.length;
    for (const g of groups.reverse()) {
      if (skip) {
        // Statistics are milliseconds here: compare with a millisecond of slack.
        if (f.from && g.maxMs !== undefined && g.maxMs + 1 < f.from.getTime()) continue;
        if (f.to && g.minMs !== undefined && g.minMs > f.to.getTime()) continue;
        if (cursor && g.minMs !== undefined && g.minMs > Date.parse(cursor.at) + 1) continue;
        if (f.projectId && g.minProject !== undefined && g.maxProject !== undefined) {
          if (f.projectId < g.minProject || f.projectId > g.maxProject) continue;
        } else if (f.projectId && g.minProject === undefined && g.nulls === g.end - g.start) continue;
      }
      const oldestHeld = found.length >= page.limit ? found[page.limit - 1] : undefined;
      if (oldestHeld && g.maxMs !== undefined && g.maxMs + 1 < Date.parse(oldestHeld.timestamp)) break;
      stats.rowGroupsRead += 1;
      const rows = await readRows(bytes, { rowStart: g.start, rowEnd: g.end, columns: LOG_COLUMNS });
      for (const r of rows) {
        const view: LogView = {
          id: r.id as string,
          timestamp: microsIso(r.timestamp as bigint),
          trace_id: (r.trace_id as string | null) ?? null,
          span_id: (r.span_id as string | null) ?? null,
          project_id: (r.project_id as string | null) ?? null,
          session_id: (r.session_id as string | null) ?? null,
          user_id: (r.user_id as string | null) ?? null,
          service: r.service as string,
          level: r.level as LogView['level'],
          message: r.message as string,
          attributes: (r.attributes as LogView['attributes']) ?? {},
        };
        if (matches(view, f, levels, cursor)) found.push(view);
      }
      found.sort(newestFirst);
      if (found.length > page.limit) found.length = page.limit;
    }
  }
  return found;
}

function cursorParts(cursor: string): { at: string; id: string } {
  const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
  return { at, id };
}

export function newestFirst(a: LogView, b: LogView): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
