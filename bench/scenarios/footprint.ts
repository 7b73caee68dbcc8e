/**
 * footprint: what the embedded platform costs on a small machine. (a) first start on an empty data
 * directory until /readyz answers 200 (initdb + migrations included); (b) restart on the same data
 * directory; (c) PSS (`/proc/<pid>/smaps_rollup`) of the platform process, its helper children and its
 * PostgreSQL processes after an idle period and after the api-auth load; (d) event-loop delay p99
 * (`monitorEventLoopDelay`) while one 2-second SQL query runs through the platform's database driver,
 * against the same figure at rest. Absolute goals (no reference process): PSS is a sum of the
 * processes' own shares, so shared libraries are counted once.
 *
 * Settings: BENCH_IDLE_SECONDS (idle period before the first PSS reading, default 60).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { sql } from 'kysely';
import { EMBEDDED_DATABASE, embeddedConnection, openPostgres } from '../../src/store/index.js';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';

function pssKb(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const match = /^Pss:\s+(\d+) kB/m.exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** pid → parent pid of every process (Linux /proc). */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      map.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  return map;
}

function descendants(root: number, tree: Map<number, number>): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const [child, parent] of tree) {
      if (parent === pid) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

interface Footprint {
  totalMb: number;
  detail: string;
}

function measureFootprint(platformPid: number, clusterDir: string): Footprint {
  const tree = parents();
  const postmaster = Number(readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const postgres = [postmaster, ...descendants(postmaster, tree)];
  const helpers = descendants(platformPid, tree).filter((p) => !postgres.includes(p));
  const mb = (pids: number[]) => pids.reduce((sum, p) => sum + pssKb(p), 0) / 1024;
  const node = mb([platformPid]);
  const help = mb(helpers);
  const pg = mb(postgres);
  return {
    totalMb: node + help + pg,
    detail: `platform ${node.toFixed(1)} MB + ${helpers.length} helper processes ${help.toFixed(1)} MB + ${postgres.length} PostgreSQL processes ${pg.toFixed(1)} MB`,
  };
}

/** Event-loop delay p99 (ms) over `ms`, while `work` runs (or at rest). */
async function loopP99(ms: number, work?: () => Promise<unknown>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const started = Date.now();
  await Promise.all([work?.(), new Promise((r) => setTimeout(r, ms))]);
  if (Date.now() - started < ms) await new Promise((r) => setTimeout(r, ms - (Date.now() - started)));
  h.disable();
  return h.percentile(99) / 1e6;
}

export const footprint: Scenario = {
  name: 'footprint',
  description:
    'embedded mode: first start and restart to /readyz, PSS idle and after load, event-loop p99 during a 2 s query',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('platform-bench-fp-');
    const dataDir = path.join(dir, 'data');
    const clusterDir = path.join(dataDir, 'postgres');
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    const [command, args] = await platformServeCommand((m) => ctx.progress(m));
    const env = childEnv({
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PORT: String(port),
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'warn',
    });
    const notes: string[] = [];

    const start = async (label: string) => {
      const t0 = performance.now();
      const server = ctx.spawnServer(command, args, { cwd: repoRoot, env });
      await server.waitReady(`${base}/readyz`, 120_000);
      const ms = performance.now() - t0;
      ctx.progress(`${label}: ready in ${ms.toFixed(0)} ms`);
      return { server, ms };
    };
    const stop = async (server: { child: import('node:child_process').ChildProcess }) => {
      const exited = new Promise((r) => server.child.once('exit', r));
      server.child.kill('SIGTERM');
      await exited;
    };

    const first = await start('first start (empty data dir)');
    await stop(first.server);
    const second = await start('restart');
    const pid = second.server.child.pid!;

    const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
    ctx.progress(`idle ${idleSeconds} s`);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = measureFootprint(pid, clusterDir);
    ctx.progress(`idle: ${idle.totalMb.toFixed(1)} MB PSS (${idle.detail})`);

    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench');
    const load = await ctx.measure('platform GET /api/auth/me (api-auth load)', `${base}/api/auth/me`, {
      authorization: `Bearer ${token}`,
    });
    await new Promise((r) => setTimeout(r, 2000));
    const loaded = measureFootprint(pid, clusterDir);
    notes.push(
      `api-auth load: ${load.requestsPerSecond.toFixed(0)} req/s, p99 ${load.latencyP99Ms.toFixed(1)} ms`,
    );

    // (d) The platform's database driver (pg pool over the embedded server's socket, as `serve` has
    // it), in this process: the event loop while one 2-second query runs vs. at rest.
    const db = await openPostgres({
      connection: embeddedConnection(clusterDir, EMBEDDED_DATABASE),
      poolSize: 2,
    });
    let queryMs = 0;
    let rowsMs = 0;
    let rest = 0;
    let during = 0;
    let duringRows = 0;
    try {
      rest = await loopP99(2000);
      during = await loopP99(2000, async () => {
        const t0 = performance.now();
        await sql`select pg_sleep(2)`.execute(db.db);
        queryMs = performance.now() - t0;
      });
      // Not a goal, for comparison: a large result is parsed into JS objects on the event loop.
      duringRows = await loopP99(1000, async () => {
        const t0 = performance.now();
        await sql`select i, md5(i::text) from generate_series(1, 200000) as g(i)`.execute(db.db);
        rowsMs = performance.now() - t0;
      });
    } finally {
      await db.close();
    }
    notes.push(
      `event loop measured in the bench process on the platform's driver (a pg pool over the embedded socket): select pg_sleep(2) took ${queryMs.toFixed(0)} ms`,
      `for comparison, a 200 000-row result (${rowsMs.toFixed(0)} ms): event-loop p99 ${duringRows.toFixed(1)} ms — pg parses rows on the event loop, so big results should be paged or streamed`,
    );

    await stop(second.server);

    const value = (
      name: string,
      unit: string,
      v: number,
      op: '<=' | '<',
      goal: number,
      detail?: string,
    ): Figure => ({
      name,
      unit,
      reference: null,
      platform: { label: 'platform (embedded)', value: v, ...(detail ? { detail } : {}) },
      ratio: null,
      goal: { on: 'value', op, value: goal },
      met: op === '<=' ? v <= goal : v < goal,
    });
    const figures: Figure[] = [
      value('first start on an empty data dir → /readyz 200', 'ms', first.ms, '<=', 5000),
      value('restart → /readyz 200', 'ms', second.ms, '<=', 2000),
      value(`PSS after ${idleSeconds} s idle`, 'MB', idle.totalMb, '<=', 200, idle.detail),
      value('PSS after the api-auth load', 'MB', loaded.totalMb, '<=', 200, loaded.detail),
      value('event-loop delay p99 at rest', 'ms', rest, '<=', 20),
      value('event-loop delay p99 during a 2 s SQL query', 'ms', during, '<=', 20),
    ];
    return {
      description: this.description,
      figures,
      met: figures.every((f) => f.met),
      notes,
    };
  },
};
