/**
 * The cold tier: a day partition past the hot window moves to Parquet (read back before the commit
 * that drops it), a rotation SIGKILLed between upload and commit leaves no duplicate, queries over
 * hot + cold return the union in order, and DuckDB — an independent reader — reads the files row
 * for row as PostgreSQL held them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateOnce } from '../src/observe/rotation.js';
import { createTestPlatform, servicesMissing, storeMode, type TestPlatform } from './helpers/app.js';
import { repoRoot } from './helpers/process.js';
import { embeddedTestDir, testDatabaseUrl } from './helpers/services.js';
import { eventually } from './helpers/wait.js';

const DAY = 86_400_000;

function logRecords(times: number[], projects: string[]) {
  return {
    resourceLogs: projects.map((project, p) => ({
      resource: {
        attributes: [
          { key: 'service.name', value: { stringValue: `svc-${p}` } },
          { key: 'platform.project_id', value: { stringValue: project } },
        ],
      },
      scopeLogs: [
        {
          logRecords: times
            .filter((_, i) => i % projects.length === p)
            .map((ms, i) => ({
              timeUnixNano: String(BigInt(ms) * 1_000_000n + BigInt(i % 1000) * 1000n),
              severityNumber: [5, 9, 13, 17][i % 4],
              body: { stringValue: `record ${ms} ${i} ünïcode` },
              attributes: [
                { key: 'n', value: { intValue: String(i) } },
                { key: 'tag', value: { stringValue: i % 2 ? 'odd' : 'even' } },
              ],
            })),
        },
      ],
    })),
  };
}

describe.skipIf(servicesMissing)('observe cold tier (Parquet)', () => {
  let t: TestPlatform;
  let projects: string[];
  const work = mkdtempSync(path.join(tmpdir(), 'observe-cold-'));

  beforeAll(async () => {
    t = await createTestPlatform();
    projects = [];
    for (const name of ['cold-a', 'cold-b']) {
      projects.push(
        (await t.request('POST', '/api/projects', { token: t.adminToken, body: { name } })).body.id,
      );
    }
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const db = () => t.platform.drivers.db.db;

  /** Every log entry of both projects through the API, paged (limit 70) across hot and cold. */
  async function everything(from: string): Promise<{ id: string; timestamp: string }[]> {
    const out: { id: string; timestamp: string }[] = [];
    let cursor: string | null = null;
    do {
      const res: {
        status: number;
        body: { items: { id: string; timestamp: string }[]; next_cursor: string | null };
      } = await t.request(
        'GET',
        `/api/observe/logs?from=${from}&limit=70${cursor ? `&cursor=${cursor}` : ''}`,
        {
          token: t.adminToken,
        },
      );
      expect(res.status).toBe(200);
      out.push(
        ...res.body.items
          .filter((e) => e.timestamp >= from)
          .map((e) => ({ id: e.id, timestamp: e.timestamp })),
      );
      cursor = res.body.next_cursor;
    } while (cursor);
    return out.filter((e) => !e.id.startsWith('platform'));
  }

  /** The child runs one rotation pass and hangs after the upload, until SIGKILL. */
  async function rotateUntilUploadThenKill(): Promise<string[]> {
    const database = (await sql<{ d: string }>`select current_database() as d`.execute(db())).rows[0]!.d;
    const schema = (await sql<{ s: string }>`select current_schema() as s`.execute(db())).rows[0]!.s;
    const script = path.join(work, 'rotate-child.mts');
    const src = (p: string) => JSON.stringify(path.join(repoRoot, p));
    writeFileSync(
      script,
      `import { rotateOnce } from ${src('src/observe/rotation.ts')};
import { openPostgres, embeddedConnection, FsObjectStore } from ${src('src/store/index.ts')};
import { createLogger } from ${src('src/core/logger.ts')};
const handle = await openPostgres(${
        storeMode === 'embedded'
          ? `{ connection: embeddedConnection(${JSON.stringify(embeddedTestDir)}, ${JSON.stringify(database)}), poolSize: 2 }`
          : `{ url: ${JSON.stringify(testDatabaseUrl)}, schema: ${JSON.stringify(schema)}, poolSize: 2 }`
      });
const objects = new FsObjectStore({ root: ${JSON.stringify(path.join(t.config.data_dir, 'objects'))}, publicUrl: 'http://127.0.0.1', signingKey: Buffer.alloc(32, 7) });
await rotateOnce(handle.db, objects, { hotHours: 0, retentionDays: 30, rowsPerFile: 120, afterUpload: async (info) => {
  process.stdout.write('UPLOADED ' + JSON.stringify(info.keys) + '\\n');
  await new Promise(() => {});
} }, createLogger({ log_level: 'silent', dev: false }));
`,
    );
    const child = spawn(process.execPath, [path.join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += String(d);
    });
    child.stderr.on('data', (d) => {
      out += String(d);
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const line = await eventually(
      () => /UPLOADED (.*)\n/.exec(out)?.[1],
      60_000,
      `the child's upload (${out})`,
    );
    child.kill('SIGKILL');
    await exited;
    return JSON.parse(line as string) as string[];
  }

  it('rotation interrupted by SIGKILL, then completed: hot + cold answer the union once, in order; DuckDB reads the same rows', async () => {
    const now = Date.now();
    const yesterday = Math.floor(now / DAY) * DAY - DAY + 12 * 3_600_000;
    const oldTimes = Array.from({ length: 300 }, (_, i) => yesterday + i * 1000);
    const newTimes = Array.from({ length: 60 }, (_, i) => now - 120_000 + i * 1000);
    for (const times of [oldTimes, newTimes]) {
      const res = await t.platform.fastify.inject({
        method: 'POST',
        url: '/v1/logs',
        payload: JSON.stringify(logRecords(times, projects)),
        headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({});
    }
    const day = new Date(yesterday).toISOString().slice(0, 10);
    const partition = `log_entries_p${day.replaceAll('-', '')}`;
    const snapshot = await sql<
      Record<string, unknown>
    >`select to_char(timestamp at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ts,
        id::text as id, trace_id, span_id, project_id::text as project_id, session_id::text as session_id,
        user_id::text as user_id, service, level, message, attributes::text as attributes
      from ${sql.table(partition)} order by timestamp, id`.execute(db());
    expect(snapshot.rows).toHaveLength(300);
    const from = new Date(yesterday - 3_600_000).toISOString();
    const before = await everything(from);
    const ours = (rows: { id: string }[]) => rows.filter((r) => !platformIds.has(r.id));
    const platformIds = new Set(
      (
        await sql<{ id: string }>`select id::text as id from log_entries where service = 'platform'`.execute(
          db(),
        )
      ).rows.map((r) => r.id),
    );
    expect(ours(before)).toHaveLength(360);

    // 1. Killed between the upload (and its read-back) and the commit: files exist, nothing catalogued.
    const orphanKeys = await rotateUntilUploadThenKill();
    expect(orphanKeys.length).toBe(3);
    const objects = t.platform.drivers.objects;
    for (const key of orphanKeys) expect(await objects.head(key)).toBeDefined();
    expect(await db().selectFrom('observe_cold_files').selectAll().execute()).toEqual([]);
    const afterKill = await everything(from);
    expect(ours(afterKill).map((r) => r.id)).toEqual(ours(before).map((r) => r.id));

    // 2. The next pass completes: the partition is gone, the files are catalogued.
    const result = await rotateOnce(
      db(),
      objects,
      { hotHours: 0, retentionDays: 30, rowsPerFile: 120 },
      pino({ level: 'silent' }),
    );
    t.platform.services.observe.ingest.forgetPartitions();
    expect(result.rotated.find((r) => r.table === 'log_entries')).toMatchObject({ day, rows: 300, files: 3 });
    expect(
      (await sql<{ ok: boolean }>`select to_regclass(${partition}) is null as ok`.execute(db())).rows[0]!.ok,
    ).toBe(true);
    const files = await db()
      .selectFrom('observe_cold_files')
      .selectAll()
      .where('signal', '=', 'logs')
      .orderBy('min_time')
      .execute();
    expect(files.map((f) => f.row_count)).toEqual([120, 120, 60]);
    expect(
      files.every((f) => f.object_key.startsWith(`otel/logs/${day}/`) && f.object_key.endsWith('.parquet')),
    ).toBe(true);
    expect(new Set(files.flatMap((f) => f.project_ids))).toEqual(new Set(projects));

    // 3. Hot + cold: the same entries, once each, newest first; filters reach the cold rows.
    const after = await everything(from);
    expect(ours(after).map((r) => r.id)).toEqual(ours(before).map((r) => r.id));
    const sorted = [...after].sort((a, b) =>
      a.timestamp === b.timestamp ? (a.id < b.id ? 1 : -1) : a.timestamp < b.timestamp ? 1 : -1,
    );
    expect(after).toEqual(sorted);
    const coldOnly = await t.request(
      'GET',
      `/api/observe/logs?project_id=${projects[1]}&level=error&q=%C3%BCn%C3%AFcode&attr=tag=odd&from=${from}&to=${new Date(yesterday + DAY / 2).toISOString()}&limit=200`,
      { token: t.adminToken },
    );
    const expected = snapshot.rows.filter(
      (r) =>
        r.project_id === projects[1] && r.level === 'error' && JSON.parse(String(r.attributes)).tag === 'odd',
    );
    expect(coldOnly.body.items.map((e: { id: string }) => e.id)).toEqual(expected.map((r) => r.id).reverse());
    expect(coldOnly.body.items[0].attributes.n).toEqual(JSON.parse(String(expected.at(-1)!.attributes)).n);

    // A page the hot rows fill (the 60 recent entries, newest first) reads no Parquet file; one that
    // reaches back to yesterday does.
    const store = t.platform.drivers.objects;
    const realGet = store.get.bind(store);
    const fetched: string[] = [];
    store.get = (key) => {
      fetched.push(key);
      return realGet(key);
    };
    try {
      const recent = await t.request('GET', `/api/observe/logs?project_id=${projects[0]}&limit=10`, {
        token: t.adminToken,
      });
      expect(recent.body.items).toHaveLength(10);
      expect(fetched).toEqual([]);
      const old = await t.request(
        'GET',
        `/api/observe/logs?project_id=${projects[0]}&to=${new Date(yesterday + DAY / 2).toISOString()}&limit=10`,
        { token: t.adminToken },
      );
      expect(old.body.items).toHaveLength(10);
      expect(fetched.length).toBeGreaterThan(0);
    } finally {
      store.get = realGet;
    }

    // 4. DuckDB reads the catalogued files: row for row what PostgreSQL held.
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    // The object store's own layout on disk is its business: the files are fetched through it.
    const local: string[] = [];
    for (const f of files) {
      const got = await objects.get(f.object_key);
      const chunks: Buffer[] = [];
      for await (const chunk of got!.body) chunks.push(chunk as Buffer);
      const file = path.join(work, path.basename(f.object_key));
      writeFileSync(file, Buffer.concat(chunks));
      local.push(file);
    }
    const list = local.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ');
    const read =
      await conn.runAndReadAll(`select strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') as ts, id::varchar as id,
        trace_id, span_id, project_id::varchar as project_id, session_id::varchar as session_id, user_id::varchar as user_id,
        service, level, message, attributes::varchar as attributes
      from read_parquet([${list}]) order by timestamp, id`);
    const duckRows = read.getRowObjectsJS();
    expect(duckRows).toHaveLength(300);
    for (let i = 0; i < 300; i++) {
      const pgRow = snapshot.rows[i]!;
      const d = duckRows[i]!;
      expect({ ...d, attributes: JSON.parse(String(d.attributes)) }).toEqual({
        ...pgRow,
        attributes: JSON.parse(String(pgRow.attributes)),
      });
    }
    conn.closeSync();
  }, 180_000);

  it('spans, metric samples, the query language, the summary and a session timeline answer the same after their day moved to Parquet', async () => {
    const now = Date.now();
    const base = Math.floor(now / DAY) * DAY - DAY + 15 * 3_600_000;
    const ns = (ms: number) => String(BigInt(ms) * 1_000_000n);
    const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
    const traceId = hex(0xc01d, 32);
    const otherTrace = hex(0xc01e, 32);
    const session = '0c01d000-0000-4000-8000-000000000001';
    const resource = (project: string, service: string) => ({
      attributes: [
        { key: 'service.name', value: { stringValue: service } },
        { key: 'platform.project_id', value: { stringValue: project } },
        { key: 'platform.session_id', value: { stringValue: session } },
      ],
    });
    const post = async (signal: string, body: unknown) => {
      const res = await t.platform.fastify.inject({
        method: 'POST',
        url: `/v1/${signal}`,
        payload: JSON.stringify(body),
        headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({});
    };
    // 40 spans of one trace (a root, children, grandchildren), 5 of another project's trace.
    await post('traces', {
      resourceSpans: [
        {
          resource: resource(projects[0]!, 'cold-api'),
          scopeSpans: [
            {
              spans: Array.from({ length: 40 }, (_, i) => ({
                traceId,
                spanId: hex(i + 1, 16),
                ...(i === 0 ? {} : { parentSpanId: hex(i < 10 ? 1 : (i % 9) + 2, 16) }),
                name: `op ${i}`,
                kind: 2,
                startTimeUnixNano: ns(base + i * 50),
                endTimeUnixNano: ns(base + i * 50 + (i === 0 ? 5000 : 30)),
                status: { code: i % 13 === 5 ? 2 : 0 },
                attributes: [{ key: 'i', value: { intValue: String(i) } }],
              })),
            },
          ],
        },
        {
          resource: resource(projects[1]!, 'cold-other'),
          scopeSpans: [
            {
              spans: Array.from({ length: 5 }, (_, i) => ({
                traceId: otherTrace,
                spanId: hex(100 + i, 16),
                name: `other ${i}`,
                startTimeUnixNano: ns(base + i * 10),
                endTimeUnixNano: ns(base + i * 10 + 5),
              })),
            },
          ],
        },
      ],
    });
    // Logs of the session, some in the trace; services and levels for the query language.
    await post('logs', {
      resourceLogs: ['cold-api', 'cold-worker'].map((service, s) => ({
        resource: resource(projects[0]!, service),
        scopeLogs: [
          {
            logRecords: Array.from({ length: 30 }, (_, i) => ({
              timeUnixNano: ns(base + 7 + i * 97 + s),
              severityNumber: [5, 9, 13, 17, 21][i % 5],
              body: { stringValue: `${service} step ${i} ${i % 3 === 0 ? 'timeout' : 'ok'}` },
              ...(i % 2 === 0 ? { traceId, spanId: hex((i % 40) + 1, 16) } : {}),
              attributes: [{ key: 'http.status', value: { stringValue: String(200 + (i % 4) * 100) } }],
            })),
          },
        ],
      })),
    });
    // A gauge in two routes, a cumulative sum, a cumulative histogram: a point every 30 s for 20 min.
    const points = Array.from({ length: 40 }, (_, i) => base + i * 30_000);
    await post('metrics', {
      resourceMetrics: [
        {
          resource: resource(projects[0]!, 'cold-api'),
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'cold_gauge',
                  gauge: {
                    dataPoints: points.flatMap((ms, i) =>
                      ['/a', '/b'].map((route, r) => ({
                        timeUnixNano: ns(ms),
                        asDouble: (i % 7) * 1.5 + r * 10,
                        attributes: [{ key: 'route', value: { stringValue: route } }],
                      })),
                    ),
                  },
                },
                {
                  name: 'cold_requests_total',
                  sum: {
                    aggregationTemporality: 2,
                    isMonotonic: true,
                    dataPoints: points.map((ms, i) => ({ timeUnixNano: ns(ms), asInt: String(i * i) })),
                  },
                },
                {
                  name: 'cold_latency_ms',
                  histogram: {
                    aggregationTemporality: 2,
                    dataPoints: points.map((ms, i) => ({
                      timeUnixNano: ns(ms),
                      count: String(10 * (i + 1)),
                      sum: 55 * (i + 1),
                      explicitBounds: [5, 10, 50, 100],
                      bucketCounts: [1, 2, 3, 4, 0].map((c) => String(c * (i + 1))),
                    })),
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    await t.platform.services.observe.flush();

    const from = new Date(base - 3_600_000).toISOString();
    const to = new Date(base + 3_600_000).toISOString();
    const get = async (url: string) => {
      const res = await t.request('GET', url, { token: t.adminToken });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };
    const query = encodeURIComponent('{service=~"cold-.*", level>="warn", attributes.http.status!="200"}');
    const timeline = async () => {
      const items: unknown[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: unknown[]; next_cursor: string | null } = await get(
          `/api/observe/sessions/${session}/timeline?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        items.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      return items;
    };
    const answers = async () => ({
      trace: await get(`/api/observe/traces/${traceId}`),
      other: await get(`/api/observe/traces/${otherTrace}`),
      traces: await get(`/api/observe/traces?project_id=${projects[0]}&from=${from}&to=${to}`),
      gauge: await get(
        `/api/observe/metrics?name=cold_gauge&from=${from}&to=${to}&step=120&agg=max&group_by=route`,
      ),
      gaugeB: await get(
        `/api/observe/metrics?name=cold_gauge&match=${encodeURIComponent('route=/b')}&from=${from}&to=${to}&step=300&agg=avg`,
      ),
      rate: await get(`/api/observe/metrics?name=cold_requests_total&from=${from}&to=${to}&step=60&agg=rate`),
      p90: await get(`/api/observe/metrics?name=cold_latency_ms&from=${from}&to=${to}&step=300&agg=p90`),
      logs: await get(`/api/observe/logs?query=${query}&from=${from}&to=${to}&limit=200`),
      summary: await get(`/api/observe/logs/summary?query=${query}&from=${from}&to=${to}`),
      timeline: await timeline(),
    });
    const before = await answers();
    // The data is what was sent (so that "the same after" means something).
    expect(before.trace.span_count).toBe(40);
    expect(
      before.trace.spans.map((s: { depth: number }) => s.depth).filter((d: number) => d === 2).length,
    ).toBe(30);
    expect(before.trace.logs).toHaveLength(30);
    expect(before.other.spans).toHaveLength(5);
    expect(before.gauge.series).toHaveLength(2);
    expect(before.gauge.series.flatMap((s: { points: unknown[] }) => s.points)).toHaveLength(20);
    expect(before.rate.series[0].points.length).toBeGreaterThan(15);
    expect(before.p90.series[0].points.length).toBe(4);
    expect(before.logs.items.length).toBeGreaterThan(5);
    expect(
      before.logs.items.every(
        (e: { level: string; attributes: Record<string, unknown> }) =>
          ['warn', 'error', 'fatal'].includes(e.level) && e.attributes['http.status'] !== '200',
      ),
    ).toBe(true);
    expect(before.summary.total).toBe(before.logs.items.length);
    // Every span and log entry carries the session id (both resources name it), but the timeline is
    // the session's project's: the other project's 5 spans are not in it (before or after the move).
    expect(before.timeline).toHaveLength(40 + 60);

    const result = await rotateOnce(
      db(),
      t.platform.drivers.objects,
      { hotHours: 0, retentionDays: 30, rowsPerFile: 25 },
      pino({ level: 'silent' }),
    );
    t.platform.services.observe.ingest.forgetPartitions();
    const day = new Date(base).toISOString().slice(0, 10);
    expect(
      result.rotated
        .filter((r) => r.day === day)
        .map((r) => r.table)
        .sort(),
    ).toEqual(['log_entries', 'metric_samples', 'spans']);
    for (const table of ['log_entries', 'spans', 'metric_samples']) {
      const gone = await sql<{
        ok: boolean;
      }>`select to_regclass(${`${table}_p${day.replaceAll('-', '')}`}) is null as ok`.execute(db());
      expect(gone.rows[0]!.ok, table).toBe(true);
    }
    const after = await answers();
    for (const key of Object.keys(before) as (keyof typeof before)[])
      expect(after[key], key).toEqual(before[key]);
  }, 180_000);
});
