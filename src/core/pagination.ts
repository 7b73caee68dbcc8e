import { type RawBuilder, type SelectQueryBuilder, sql } from 'kysely';
import { badRequest } from './errors.js';
import { isUuid } from './validation.js';

/** Opaque cursor: base64url JSON of the sort key of the last item returned. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string, length: number): string[] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === length && value.every((v) => typeof v === 'string')) {
      return value as string[];
    }
  } catch {
    // fall through to the error below
  }
  throw badRequest('invalid cursor', [
    { path: 'query.cursor', message: 'not a cursor returned by this API' },
  ]);
}

/**
 * The exact text of a timestamp column (UTC, microseconds): the time half of a `(time, id)` cursor.
 * A JS Date keeps only milliseconds, so a cursor built from one would repeat or skip rows created
 * within the same millisecond; select this next to the row and use it as the cursor key.
 */
export function cursorTime(column: string): RawBuilder<string> {
  return sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

const CURSOR_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

/**
 * A `(time, id)` cursor, checked: a forged one is a 400 here rather than a malformed timestamp or a
 * non-UUID reaching the driver. `at` is the exact timestamp for comparisons in SQL.
 */
export function decodeTimeCursor(cursor: string): { at: RawBuilder<Date>; id: string } {
  const [at, id] = decodeCursor(cursor, 2) as [string, string];
  if (!CURSOR_TIME.test(at) || Number.isNaN(new Date(at).getTime()) || !isUuid(id)) {
    throw badRequest('invalid cursor', [
      { path: 'query.cursor', message: 'not a cursor returned by this API' },
    ]);
  }
  return { at: sql<Date>`${at}::timestamptz`, id };
}

/**
 * The rows after a cursor made of `cursorTime(time)` and `id` in a list ordered by both columns
 * descending (`desc`, newest first) or both ascending: a row-value comparison on the exact timestamp.
 */
export function afterTimeCursor(
  cursor: string,
  columns: { time: string; id: string },
  order: 'asc' | 'desc' = 'desc',
): RawBuilder<boolean> {
  const { at, id } = decodeTimeCursor(cursor);
  const op = sql.raw(order === 'desc' ? '<' : '>');
  return sql<boolean>`(${sql.ref(columns.time)}, ${sql.ref(columns.id)}) ${op} (${at}, ${id}::uuid)`;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only tells that there is more.
 * `key` gives the sort key of a row, in the order of the query's ORDER BY.
 */
export function toPage<R, T>(
  rows: R[],
  limit: number,
  key: (row: R) => string[],
  map: (row: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const slice = more ? rows.slice(0, limit) : rows;
  const last = slice[slice.length - 1];
  return { items: slice.map(map), next_cursor: more && last ? encodeCursor(key(last)) : null };
}

/**
 * The ending every time-ordered list shares: rows after the cursor, newest first (or oldest first),
 * `limit + 1` fetched, turned into a page whose cursor is `(time, id)` of the last row. The query
 * brings its own FROM, joins, selection and filters; `columns` names its time and id columns.
 */
export async function pageByTime<DB, TB extends keyof DB, O extends { id: string }, T>(
  query: SelectQueryBuilder<DB, TB, O>,
  columns: { time: string; id: string },
  page: { limit: number; cursor?: string | undefined },
  map: (row: O) => T,
  order: 'asc' | 'desc' = 'desc',
): Promise<Page<T>> {
  let q = query.select(cursorTime(columns.time).as('cursor_at'));
  if (page.cursor) q = q.where(afterTimeCursor(page.cursor, columns, order));
  // Kysely cannot resolve a selection added to a generic query: the row is O plus the cursor column.
  const rows = (await q
    .orderBy(sql.ref(columns.time), order)
    .orderBy(sql.ref(columns.id), order)
    .limit(page.limit + 1)
    .execute()) as (O & { cursor_at: string })[];
  return toPage(rows, page.limit, (r) => [r.cursor_at, r.id], map);
}
