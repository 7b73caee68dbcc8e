/**
 * observe-alerts: (a) one alert evaluation pass of 1,000 rules (metric averages and rates, log
 * counts, absent) over a data set of BENCH_OBSERVE_ROWS rows (default 1,000,000; the figure is
 * 10,000,000), against the same 1,000 compiled statements run bare on a pg pool of the same
 * concurrency — the physical limit, the SQL itself; (b) ingest → live tail latency: a log record
 * POSTed to /v1/logs until it arrives on an SSE tail of the same platform, p50/p99, against the
 * ingest request's own round trip.
 */
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { EventBus } from '../../src/core/events.js';
import { AlertEvaluator } from '../../src/observe/alerts/evaluate.js';
import { compileAlert, parseAlert } from '../../src/observe/query-lang/index.js';
import { embeddedConnection } from '../../src/store/embedded.js';
import type { Database } from '../../src/store/schema.js';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';
const RULES = 1000;
const TICKS = 5;
const TAIL_SAMPLES = 200;
const SERIES_NAMES = 10;
const SERIES_KEYS = 10;
const SERVICES = 10;

const rowsSetting = () => {
  const n = Number(process.env.BENCH_OBSERVE_ROWS ?? 1_000_000);
  return Number.isFinite(n) && n >= 1000 ? Math.floor(n) : 1_000_000;
};

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

/** The rule mix: 40 % metric averages, 20 % counter rates, 30 % log counts, 10 % absent. */
function ruleQuery(i: number): string {
  const m = `bench_metric_${i % SERIES_NAMES}`;
  const k = String(Math.floor(i / SERIES_NAMES) % SERIES_KEYS);
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
      return `avg(${m}{k="${k}"}[5m]) > ${50 + (i % 50)}`;
    case 4:
    case 5:
      return `rate(${m}{k="${k}"}[1m]) > 0.5`;
    case 6:
    case 7:
    case 8:
      return `count(logs{service="svc-${i % SERVICES}", level>="warn"}[5m]) > ${i % 100}`;
    default:
      return `absent(${m}{k="${k}"}[2m])`;
  }
}

async function seed(db: Kysely<Database>, rows: number, projectId: string, progress: (m: string) => void) {
  const now = new Date();
  for (const table of ['log_entries', 'metric_samples']) {
    for (const offset of [-1, 0]) {
      const day = new Date(now.getTime() + offset * 86400_000).toISOString().slice(0, 10);
      await sql`select observe_ensure_partition(${table}, ${day}::date)`.execute(db);
    }
  }
  const samples = Math.floor(rows / 2);
  const logs = rows - samples;
  progress(
    `seeding ${SERIES_NAMES * SERIES_KEYS} series, ${samples} metric samples, ${logs} log entries (last 10 min)`,
  );
  await sql`insert into metric_series (project_id, name, labels, type, service)
    select ${projectId}::uuid, 'bench_metric_' || n, jsonb_build_object('k', k::text, 'service', 'api'), 'gauge', 'api'
    from generate_series(0, ${SERIES_NAMES - 1}) n, generate_series(0, ${SERIES_KEYS - 1}) k
    on conflict do nothing`.execute(db);
  const series = SERIES_NAMES * SERIES_KEYS;
  const perSeries = Math.ceil(samples / series);
  // Distinct timestamps per series over the last 10 minutes (the key is (series, time)).
  await sql`insert into metric_samples (series_id, timestamp, value)
    select s.id, ${now.toISOString()}::timestamptz - (i * (600.0 / ${perSeries})) * interval '1 second', (i % 100)::float8
    from metric_series s, generate_series(1, ${perSeries}) i
    where s.project_id = ${projectId}::uuid
    on conflict do nothing`.execute(db);
  const levels = sql`(array['debug','info','info','warn','error'])[1 + (i % 5)]`;
  for (let done = 0; done < logs; done += 500_000) {
    const n = Math.min(500_000, logs - done);
    await sql`insert into log_entries (id, timestamp, project_id, service, level, message)
      select gen_random_uuid(), ${now.toISOString()}::timestamptz - (random() * 600) * interval '1 second', ${projectId}::uuid,
        'svc-' || (i % ${SERVICES}), ${levels}, 'bench line ' || i
      from generate_series(1, ${n}) i`.execute(db);
  }
  await sql`analyze metric_samples`.execute(db);
  await sql`analyze log_entries`.execute(db);
  await sql`analyze metric_series`.execute(db);
}

export const observeAlerts: Scenario = {
  name: 'observe-alerts',
  description: `one evaluation pass of ${RULES} alert rules over BENCH_OBSERVE_ROWS rows vs. the same SQL run bare; ingest → live tail latency`,
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('platform-bench-');
    const dataDir = path.join(dir, 'data');
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    const rows = rowsSetting();
    ctx.progress('platform: starting');
    const platform = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: dataDir,
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
        // The platform's own loop stays out of the way: the bench runs the passes it measures.
        PLATFORM_ALERT_EVALUATION_INTERVAL_SECONDS: '3600',
      }),
    });
    await platform.waitReady(`${base}/readyz`, 180_000);
    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench');

    // The platform's own database (the embedded server's socket), for seeding and the evaluator.
    const pool = new pg.Pool({ ...embeddedConnection(path.join(dataDir, 'postgres')), max: 6 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      const admin = await db
        .selectFrom('users')
        .select('id')
        .where('name', '=', 'admin')
        .executeTakeFirstOrThrow();
      const project = await db
        .insertInto('projects')
        .values({ owner_id: admin.id, name: 'bench-alerts', repo_path: 'repos/bench-alerts.git' })
        .returning('id')
        .executeTakeFirstOrThrow();
      await seed(db, rows, project.id, (m) => ctx.progress(m));
      const queries = Array.from({ length: RULES }, (_, i) => ruleQuery(i));
      await db
        .insertInto('alert_rules')
        .values(
          queries.map((query, i) => {
            const expr = parseAlert(query);
            return {
              project_id: project.id,
              name: `bench rule ${i}`,
              query,
              condition: expr.kind === 'absent' ? ('absent' as const) : ('gt' as const),
              threshold: expr.kind === 'absent' ? null : expr.threshold,
              for_seconds: 60,
              channels: [],
              created_by: admin.id,
            };
          }),
        )
        .execute();

      // (a) Evaluation passes: the platform's evaluator, and the bare statements.
      const concurrency = 4;
      const evaluator = new AlertEvaluator(db, new EventBus(), pino({ level: 'silent' }), {
        concurrency,
        queryTimeoutMs: 60_000,
      });
      const bare = async () => {
        const at = new Date();
        const compiled = queries.map((q) =>
          compileAlert(parseAlert(q), { projectId: project.id }, at).compile(db),
        );
        let next = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < compiled.length) {
              const c = compiled[next++]!;
              await pool.query(c.sql, c.parameters as unknown[]);
            }
          }),
        );
      };
      ctx.progress('warm-up pass');
      await evaluator.tick();
      await bare();
      const platformMs: number[] = [];
      const bareMs: number[] = [];
      for (let i = 0; i < TICKS; i++) {
        let t0 = performance.now();
        const r = await evaluator.tick();
        platformMs.push(performance.now() - t0);
        if (r.failed) throw new Error(`${r.failed} rules failed to evaluate`);
        t0 = performance.now();
        await bare();
        bareMs.push(performance.now() - t0);
        ctx.progress(
          `pass ${i + 1}: evaluator ${platformMs[i]!.toFixed(0)} ms, bare SQL ${bareMs[i]!.toFixed(0)} ms`,
        );
      }

      // (b) Ingest → tail.
      const abort = new AbortController();
      const tail = await fetch(`${base}/api/observe/logs/tail?project_id=${project.id}&service=bench-tail`, {
        headers: { authorization: `Bearer ${token}` },
        signal: abort.signal,
      });
      if (tail.status !== 200 || !tail.body) throw new Error(`tail answered ${tail.status}`);
      const arrivals = new Map<string, number>();
      const reader = tail.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          for (const m of buffer.matchAll(/"message":"tail-(\d+)"/g))
            if (!arrivals.has(m[1]!)) arrivals.set(m[1]!, performance.now());
          buffer = buffer.slice(Math.max(0, buffer.lastIndexOf('\n\n')));
        }
      })();
      const tailMs: number[] = [];
      const ingestMs: number[] = [];
      const nanos = () => `${BigInt(Date.now()) * 1_000_000n}`;
      for (let i = 0; i < TAIL_SAMPLES; i++) {
        const body = JSON.stringify({
          resourceLogs: [
            {
              resource: {
                attributes: [
                  { key: 'service.name', value: { stringValue: 'bench-tail' } },
                  { key: 'platform.project_id', value: { stringValue: project.id } },
                ],
              },
              scopeLogs: [
                {
                  logRecords: [
                    { timeUnixNano: nanos(), severityNumber: 9, body: { stringValue: `tail-${i}` } },
                  ],
                },
              ],
            },
          ],
        });
        const t0 = performance.now();
        const res = await fetch(`${base}/v1/logs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
        });
        await res.arrayBuffer();
        ingestMs.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(`ingest answered ${res.status}`);
        const deadline = performance.now() + 10_000;
        while (!arrivals.has(String(i)) && performance.now() < deadline)
          await new Promise((r) => setTimeout(r, 1));
        const at = arrivals.get(String(i));
        if (at === undefined) throw new Error(`record ${i} never reached the tail`);
        tailMs.push(at - t0);
      }
      abort.abort();
      await reading;

      const figures: Figure[] = [];
      const evalP50 = quantile(platformMs, 0.5);
      const bareP50 = quantile(bareMs, 0.5);
      figures.push({
        name: `evaluation pass, ${RULES} rules over ${rows.toLocaleString('en')} rows (median of ${TICKS})`,
        unit: 'ms',
        reference: { label: 'the same compiled SQL, bare pg pool', value: bareP50 },
        platform: {
          label: 'AlertEvaluator.tick()',
          value: evalP50,
          detail: `max ${Math.max(...platformMs).toFixed(0)} ms`,
        },
        ratio: evalP50 / bareP50,
        goal: { on: 'ratio', op: '<=', value: 1.5 },
        met: evalP50 / bareP50 <= 1.5,
      });
      const tailP99 = quantile(tailMs, 0.99);
      const ingestP99 = quantile(ingestMs, 0.99);
      figures.push({
        name: `ingest → live tail p99 (${TAIL_SAMPLES} records; p50 ${quantile(tailMs, 0.5).toFixed(1)} ms)`,
        unit: 'ms',
        reference: { label: 'the ingest request round trip p99', value: ingestP99 },
        platform: { label: 'POST /v1/logs → SSE event', value: tailP99 },
        ratio: tailP99 / ingestP99,
        goal: { on: 'value', op: '<=', value: 1000 },
        met: tailP99 <= 1000,
      });
      return {
        description: observeAlerts.description,
        figures,
        met: figures.every((f) => f.met),
        notes: [
          `data set: ${rows.toLocaleString('en')} rows (BENCH_OBSERVE_ROWS), half metric samples over ${SERIES_NAMES * SERIES_KEYS} series, half log entries, all in the last 10 minutes`,
          `rule mix: 40% avg, 20% rate, 30% log count with level ≥ warn, 10% absent; ${concurrency} rule queries at once`,
          'the evaluator adds per rule a transaction with statement_timeout and the state machine; per pass one bookkeeping UPDATE',
        ],
      };
    } finally {
      await db.destroy();
    }
  },
};
