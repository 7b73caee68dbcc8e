import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { type ColumnSpec, readMetadata, readParquetObject, readRows, writeParquet } from './parquet.js';
import type { PartitionedTable } from './writes.js';

export type ColdSignal = 'logs' | 'spans' | 'metrics';

interface TableSpec {
  table: PartitionedTable;
  signal: ColdSignal;
  time: string;
  /** The second sort key (unique with the time). */
  tiebreak: string;
  columns: ColumnSpec[];
}

const c = (name: string, kind: ColumnSpec['kind'], nullable = false): ColumnSpec => ({
  name,
  kind,
  nullable,
});

/** Column layout of the cold files: the hot table's columns, time first (files are sorted by it). */
export const COLD_TABLES: TableSpec[] = [
  {
    table: 'log_entries',
    signal: 'logs',
    time: 'timestamp',
    tiebreak: 'id',
    columns: [
      c('timestamp', 'time'),
      c('id', 'uuid'),
      c('trace_id', 'text', true),
      c('span_id', 'text', true),
      c('project_id', 'uuid', true),
      c('session_id', 'uuid', true),
      c('user_id', 'uuid', true),
      c('service', 'text'),
      c('level', 'text'),
      c('message', 'text'),
      c('attributes', 'json'),
      c('source_namespace', 'text', true),
      c('source_pod', 'text', true),
      c('source_container', 'text', true),
      c('created_at', 'time'),
    ],
  },
  {
    table: 'spans',
    signal: 'spans',
    time: 'start_time',
    tiebreak: 'id',
    columns: [
      c('start_time', 'time'),
      c('id', 'uuid'),
      c('trace_id', 'text'),
      c('span_id', 'text'),
      c('parent_span_id', 'text', true),
      c('name', 'text'),
      c('kind', 'text'),
      c('status_code', 'text'),
      c('status_message', 'text', true),
      c('service', 'text', true),
      c('project_id', 'uuid', true),
      c('session_id', 'uuid', true),
      c('user_id', 'uuid', true),
      c('end_time', 'time'),
      c('duration_ms', 'double'),
      c('attributes', 'json'),
      c('resource_attributes', 'json'),
      c('events', 'json'),
      c('links', 'json'),
      c('created_at', 'time'),
    ],
  },
  {
    table: 'metric_samples',
    signal: 'metrics',
    time: 'timestamp',
    tiebreak: 'series_id',
    columns: [
      c('timestamp', 'time'),
      c('series_id', 'uuid'),
      c('value', 'double', true),
      c('count', 'int64', true),
      c('sum', 'double', true),
      c('buckets', 'json', true),
      c('created_at', 'time'),
    ],
  },
];

export interface RotationOptions {
  /** Partitions whose whole day ended longer ago than this move to Parquet. */
  hotHours: number;
  /** Cold files of days older than this are deleted. */
  retentionDays: number;
  /** Rows per Parquet file. */
  rowsPerFile: number;
  /** Test hook: runs after a partition's files are uploaded and verified, before the commit. */
  afterUpload?: (info: { table: string; day: string; keys: string[] }) => Promise<void>;
}

export interface RotationResult {
  rotated: { table: string; day: string; rows: number; files: number }[];
  expiredFiles: number;
}

/** Microseconds since the epoch (decimal text) as an exact timestamptz. */
export function microsToTime(micros: string) {
  return sql<Date>`('epoch'::timestamptz + ${micros}::bigint * interval '1 microsecond')`;
}

const PARTITION_NAME = /^(log_entries|spans|metric_samples)_p(\d{4})(\d{2})(\d{2})$/;

/** The day partitions of a table: `{name, day}` oldest first. */
export async function listPartitions(
  db: Db,
  table: PartitionedTable,
): Promise<{ name: string; day: string }[]> {
  const r = await sql<{ name: string }>`select c.relname as name from pg_inherits i
    join pg_class c on c.oid = i.inhrelid where i.inhparent = to_regclass(${table})::oid order by c.relname`.execute(
    db,
  );
  return r.rows.flatMap((row) => {
    const m = PARTITION_NAME.exec(row.name);
    return m && m[1] === table ? [{ name: row.name, day: `${m[2]}-${m[3]}-${m[4]}` }] : [];
  });
}

function selectList(spec: TableSpec) {
  return sql.join(
    spec.columns.map((col) =>
      col.kind === 'time'
        ? sql`(extract(epoch from ${sql.ref(col.name)}) * 1000000)::bigint::text as ${sql.ref(col.name)}`
        : col.kind === 'uuid'
          ? sql`${sql.ref(col.name)}::text as ${sql.ref(col.name)}`
          : sql.ref(col.name),
    ),
  );
}

function toColumns(spec: TableSpec, rows: Record<string, unknown>[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const col of spec.columns) {
    out[col.name] = rows.map((r) => {
      const v = r[col.name];
      if (v === null || v === undefined) return null;
      if (col.kind === 'time') return BigInt(v as string);
      if (col.kind === 'int64') return BigInt(v as number | string);
      return v;
    });
  }
  return out;
}

/**
 * Moves one day partition to Parquet: its rows in files of `rowsPerFile` sorted by time, each
 * uploaded and read back (row count and ids) before anything is committed; then ONE transaction
 * locks the partition, checks that it holds exactly the rows written, records the files in
 * `observe_cold_files` and drops the partition. A crash before that commit leaves the rows in
 * PostgreSQL and the uploaded objects uncatalogued (queries read only catalogued files, the next
 * run writes new ones and old orphans are deleted); after it, the rows exist only in the files.
 */
async function rotatePartition(
  db: Db,
  objects: ObjectStore,
  spec: TableSpec,
  partition: { name: string; day: string },
  options: RotationOptions,
): Promise<{ rows: number; files: number } | null> {
  const batch = randomUUID();
  const files: { key: string; rows: number; size: number; min: string; max: string; projects: string[] }[] =
    [];
  let after: { time: string; tiebreak: string } | null = null;
  let total = 0;
  for (let part = 0; ; part++) {
    const keyset = after
      ? sql`where (${sql.ref(spec.time)}, ${sql.ref(spec.tiebreak)}) > (${microsToTime(after.time)}, ${after.tiebreak}::uuid)`
      : sql``;
    const chunk = await sql<
      Record<string, unknown>
    >`select ${selectList(spec)} from ${sql.table(partition.name)} ${keyset}
      order by ${sql.ref(spec.time)}, ${sql.ref(spec.tiebreak)} limit ${options.rowsPerFile}`.execute(db);
    const rows = chunk.rows;
    if (rows.length === 0) break;
    const bytes = writeParquet(spec.columns, toColumns(spec, rows));
    const key = `otel/${spec.signal}/${partition.day}/${batch}-${String(part).padStart(4, '0')}.parquet`;
    await objects.put(key, Buffer.from(bytes), { contentType: 'application/vnd.apache.parquet' });
    await verifyUpload(objects, key, rows, spec.tiebreak);
    const last = rows[rows.length - 1] as Record<string, unknown>;
    after = { time: String(last[spec.time]), tiebreak: String(last[spec.tiebreak]) };
    const projects = [
      ...new Set(rows.map((r) => r.project_id).filter((p): p is string => typeof p === 'string')),
    ];
    files.push({
      key,
      rows: rows.length,
      size: bytes.length,
      min: String((rows[0] as Record<string, unknown>)[spec.time]),
      max: after.time,
      projects,
    });
    total += rows.length;
    if (rows.length < options.rowsPerFile) break;
  }
  await options.afterUpload?.({ table: spec.table, day: partition.day, keys: files.map((f) => f.key) });
  const committed = await db.transaction().execute(async (trx) => {
    await sql`lock table ${sql.table(partition.name)} in access exclusive mode`.execute(trx);
    const count = await sql<{ n: string }>`select count(*) as n from ${sql.table(partition.name)}`.execute(
      trx,
    );
    // Late rows arrived after the read: write them with the rest next time.
    if (Number(count.rows[0]?.n) !== total) return false;
    for (const f of files) {
      await trx
        .insertInto('observe_cold_files')
        .values({
          signal: spec.signal,
          object_key: f.key,
          day: partition.day,
          min_time: microsToTime(f.min),
          max_time: microsToTime(f.max),
          row_count: f.rows,
          size_bytes: f.size,
          project_ids: f.projects,
        })
        .execute();
    }
    await sql`drop table ${sql.table(partition.name)}`.execute(trx);
    return true;
  });
  if (!committed) {
    for (const f of files) await objects.delete(f.key).catch(() => {});
    return null;
  }
  return { rows: total, files: files.length };
}

/** Reads the uploaded object back: the same number of rows and the same ids in the same order. */
async function verifyUpload(
  objects: ObjectStore,
  key: string,
  rows: Record<string, unknown>[],
  idColumn: string,
): Promise<void> {
  const file = await readParquetObject(objects, key);
  if (!file) throw new Error(`uploaded ${key} is missing`);
  const meta = readMetadata(file);
  if (Number(meta.num_rows) !== rows.length)
    throw new Error(`uploaded ${key} holds ${meta.num_rows} rows, not ${rows.length}`);
  const back = await readRows(file, { columns: [idColumn] });
  for (let i = 0; i < rows.length; i++) {
    if (back[i]?.[idColumn] !== rows[i]?.[idColumn]) throw new Error(`uploaded ${key} differs at row ${i}`);
  }
}

/** One pass: every partition past the hot window to Parquet, expired cold files deleted, old orphans removed. */
export async function rotateOnce(
  db: Db,
  objects: ObjectStore,
  options: RotationOptions,
  log: Logger,
  now = Date.now(),
): Promise<RotationResult> {
  const result: RotationResult = { rotated: [], expiredFiles: 0 };
  const cutoff = now - options.hotHours * 3_600_000;
  for (const spec of COLD_TABLES) {
    for (const partition of await listPartitions(db, spec.table)) {
      const dayEnd = Date.parse(`${partition.day}T00:00:00Z`) + 86_400_000;
      if (dayEnd > cutoff) continue;
      const done = await rotatePartition(db, objects, spec, partition, options);
      if (done) {
        result.rotated.push({ table: spec.table, day: partition.day, ...done });
        log.info({ table: spec.table, day: partition.day, ...done }, 'telemetry moved to Parquet');
      }
    }
  }
  const retentionDay = new Date(now - options.retentionDays * 86_400_000).toISOString().slice(0, 10);
  const expired = await db
    .deleteFrom('observe_cold_files')
    .where('day', '<', retentionDay)
    .returning('object_key')
    .execute();
  for (const row of expired) await objects.delete(row.object_key).catch(() => {});
  result.expiredFiles = expired.length;
  // Trace summaries stay in PostgreSQL across the move (they find a trace's cold spans by time) and
  // go with the last of their spans.
  await db
    .deleteFrom('traces')
    .where('end_time', '<', new Date(`${retentionDay}T00:00:00Z`))
    .execute();
  await removeOrphans(db, objects, now);
  return result;
}

/**
 * Objects under otel/ that no catalog row names and that are older than an hour: uploads of an
 * interrupted rotation (an upload in progress is younger).
 */
async function removeOrphans(db: Db, objects: ObjectStore, now: number): Promise<void> {
  const listed = await objects.list('otel/');
  const old = listed.filter((o) => now - o.lastModified.getTime() > 3_600_000);
  if (old.length === 0) return;
  const known = await db
    .selectFrom('observe_cold_files')
    .select('object_key')
    .where(
      'object_key',
      'in',
      old.map((o) => o.key),
    )
    .execute();
  const keep = new Set(known.map((k) => k.object_key));
  for (const o of old) if (!keep.has(o.key)) await objects.delete(o.key).catch(() => {});
}
