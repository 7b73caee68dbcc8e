/**
 * mix: the 1,000-user load on this machine against the embedded default (`platform serve`, its own
 * PostgreSQL): 20 API requests/s (reads — project list, MR list, file tree, pipeline list, issue —
 * and issue comments as the writes), 2 git pulls/s (a fetch in an existing clone, one in five a
 * full clone), 1 push/s (a commit to one of four branches) and 1,000 OTLP log records/s (10
 * OTLP/JSON exports of 100), for BENCH_MIX_SECONDS (default 600). Open loop: each request starts at
 * its scheduled time whatever the others do, and its latency counts from that time (a server that
 * falls behind shows it, no coordinated omission).
 *
 * Prints p50/p99 per kind, errors, and the resident memory of the platform process (VmRSS) and of
 * its PostgreSQL (PSS summed over the postmaster and its children: RSS would count the shared
 * buffers once per backend) every 5 s, with the trend: the slope of a least-squares line over the
 * second half of the run, in MB/min. Goals: 0 errors, p99 of the API reads ≤ 100 ms (1/10 of
 * GitLab's request budget), no growth trend (|slope| ≤ 1 MB/min for each).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';
const API_RATE = 20;
const PULL_RATE = 2;
const PUSH_RATE = 1;
const OTLP_REQUESTS_PER_SECOND = 10;
const OTLP_RECORDS_PER_REQUEST = 100;
const SAMPLE_MS = 5_000;
const API_P99_GOAL_MS = 100;
const TREND_GOAL_MB_PER_MIN = 1;
/** Requests of one kind in flight at most; past it a request is counted as an error (the server fell behind). */
const MAX_IN_FLIGHT = { api: 200, pull: 16, push: 8, otlp: 50 };

/** The repository: a few hundred commits over ~1,500 text files (≈ 6 MB packed), like a service's repo. */
const SEED_COMMITS = 400;
const SEED_FILES = 1500;

const API_MIX: { kind: string; weight: number }[] = [
  { kind: 'projects', weight: 20 },
  { kind: 'merge-requests', weight: 20 },
  { kind: 'tree', weight: 20 },
  { kind: 'pipelines', weight: 15 },
  { kind: 'issue', weight: 15 },
  { kind: 'comment', weight: 10 },
];
const READS = new Set(['projects', 'merge-requests', 'tree', 'pipelines', 'issue']);

function runGit(env: NodeJS.ProcessEnv, args: string[], cwd?: string, input?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env, stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-4000);
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`git ${args[0]} failed (${code}): ${stderr.trim()}`)),
    );
    if (input) child.stdin!.end(input);
  });
}

/** A deterministic fast-import stream: SEED_FILES files, then SEED_COMMITS commits editing a few. */
function fastImport(): Buffer {
  let x = 0x5eed;
  const rand = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const words = Array.from(
    { length: 2000 },
    (_, i) => `w${i.toString(36)}${'abcdefgh'.slice(0, 1 + (i % 8))}`,
  );
  const line = () => Array.from({ length: 10 }, () => words[rand(words.length)]).join(' ');
  const files = Array.from({ length: SEED_FILES }, (_, i) => ({
    path: `src/pkg-${i % 40}/file-${i}.ts`,
    lines: Array.from({ length: 60 }, line),
  }));
  const parts: string[] = [];
  const data = (s: string) => `data ${Buffer.byteLength(s)}\n${s}\n`;
  for (let c = 1; c <= SEED_COMMITS; c++) {
    const when = 1_700_000_000 + c * 600;
    parts.push(
      `commit refs/heads/main\nmark :${c}\ncommitter Bench <bench@example.test> ${when} +0000\n${data(`change ${c}`)}`,
    );
    if (c > 1) parts.push(`from :${c - 1}\n`);
    const touched = c === 1 ? files : Array.from({ length: 3 }, () => files[rand(files.length)]!);
    for (const f of touched) {
      if (c > 1) f.lines[rand(f.lines.length)] = line();
      parts.push(`M 100644 inline ${f.path}\n${data(`${f.lines.join('\n')}\n`)}`);
    }
    parts.push('\n');
  }
  parts.push('done\n');
  return Buffer.from(parts.join(''));
}

function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function pssMb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The postmaster of the data directory's cluster and every process under it. */
function postgresPids(clusterDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [postmaster];
  for (let i = 0; i < out.length; i++) for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  return out;
}

/** Slope of the least-squares line through (minutes, MB). */
function slopePerMinute(points: { t: number; mb: number }[]): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.mb, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.t - mx) * (p.mb - my), 0);
  const sxx = points.reduce((s, p) => s + (p.t - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

class Kind {
  readonly latencies: number[] = [];
  errors = 0;
  inFlight = 0;
  readonly errorSamples: string[] = [];
  constructor(readonly name: string) {}
  fail(message: string): void {
    this.errors++;
    if (this.errorSamples.length < 3) this.errorSamples.push(message.slice(0, 300));
  }
  stats() {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  }
}

export const mix: Scenario = {
  name: 'mix',
  description:
    'the 1,000-user mix on the embedded default: 20 API req/s, 2 git pulls/s, 1 push/s, 1,000 OTLP log records/s',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const seconds = Number(process.env.BENCH_MIX_SECONDS ?? 600);
    if (!Number.isFinite(seconds) || seconds < 10) throw new Error('BENCH_MIX_SECONDS must be ≥ 10');
    const dir = ctx.tempDir('platform-bench-mix-');
    const dataDir = path.join(dir, 'data');
    const home = path.join(dir, 'home');
    const gitEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '',
      GIT_AUTHOR_NAME: 'Bench',
      GIT_AUTHOR_EMAIL: 'bench@example.test',
      GIT_COMMITTER_NAME: 'Bench',
      GIT_COMMITTER_EMAIL: 'bench@example.test',
      LANG: 'C',
    };
    await runGit(gitEnv, ['init', '--quiet', '--bare', '--initial-branch=main', path.join(dir, 'seed.git')]);
    ctx.progress(`mix: generating the repository (${SEED_COMMITS} commits, ${SEED_FILES} files)`);
    await runGit(gitEnv, ['fast-import', '--quiet'], path.join(dir, 'seed.git'), fastImport());

    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    ctx.progress('mix: starting the platform (embedded default, fresh data dir)');
    const platform = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: dataDir,
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
      }),
    });
    await platform.waitReady(`${base}/readyz`, 180_000);
    const pid = platform.child.pid!;
    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench-mix');
    const auth = { authorization: `Bearer ${token}` };
    const api = async <T>(method: string, url: string, body?: unknown): Promise<T> =>
      json<T>(
        await fetch(`${base}${url}`, {
          method,
          headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        }),
        `${method} ${url}`,
      );

    // Set-up: a project with the repository, feature branches with MRs, issues with comments.
    const project = await api<{ id: string; clone_url: string }>('POST', '/api/projects', { name: 'mix' });
    const cloneUrl = new URL(new URL(project.clone_url).pathname, base);
    cloneUrl.username = 'admin';
    cloneUrl.password = token;
    const remote = cloneUrl.toString();
    await runGit(gitEnv, ['push', '--quiet', remote, 'main'], path.join(dir, 'seed.git'));
    const pushers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const work = path.join(dir, `pusher-${i}`);
      await runGit(gitEnv, ['clone', '--quiet', remote, work]);
      await runGit(gitEnv, ['checkout', '--quiet', '-b', `load-${i}`], work);
      pushers.push(work);
    }
    for (let i = 0; i < 10; i++) {
      const work = pushers[0]!;
      writeFileSync(path.join(work, `feature-${i}.md`), `feature ${i}\n`);
      await runGit(gitEnv, ['checkout', '--quiet', '-B', `feature-${i}`, 'origin/main'], work);
      await runGit(gitEnv, ['add', `feature-${i}.md`], work);
      await runGit(gitEnv, ['commit', '--quiet', '-m', `feature ${i}`], work);
      await runGit(gitEnv, ['push', '--quiet', '--force', 'origin', `feature-${i}`], work);
      await api('POST', `/api/projects/${project.id}/merge-requests`, {
        source_branch: `feature-${i}`,
        target_branch: 'main',
        title: `feature ${i}`,
      });
    }
    await runGit(gitEnv, ['checkout', '--quiet', '-B', 'load-0', 'origin/main'], pushers[0]);
    const ISSUES = 50;
    for (let i = 1; i <= ISSUES; i++) {
      await api('POST', `/api/projects/${project.id}/issues`, { title: `issue ${i}`, body: `about ${i}` });
    }
    const pullers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const work = path.join(dir, `puller-${i}`);
      await runGit(gitEnv, ['clone', '--quiet', remote, work]);
      pullers.push(work);
    }
    const clusterDir = path.join(dataDir, 'postgres');

    const kinds = new Map<string, Kind>();
    const kind = (name: string) => {
      const k = kinds.get(name) ?? new Kind(name);
      kinds.set(name, k);
      return k;
    };
    const started = performance.now();
    const endAt = started + seconds * 1000;
    const pending = new Set<Promise<void>>();

    /** Runs `fn` at `rate` per second, each at its scheduled time; latency from the scheduled time. */
    const schedule = (
      rate: number,
      cap: number,
      pick: (n: number) => { name: string; fn: () => Promise<void> },
    ) => {
      let n = 0;
      const group = { inFlight: 0 };
      const tick = () => {
        const due = started + (n * 1000) / rate;
        if (due >= endAt) return;
        const { name, fn } = pick(n++);
        const k = kind(name);
        if (group.inFlight >= cap) k.fail(`more than ${cap} in flight: the server fell behind`);
        else {
          group.inFlight++;
          const run = fn()
            .then(
              () => void k.latencies.push(performance.now() - due),
              (err: unknown) => k.fail(err instanceof Error ? err.message : String(err)),
            )
            .finally(() => {
              group.inFlight--;
              pending.delete(run);
            });
          pending.add(run);
        }
        const next = started + (n * 1000) / rate;
        setTimeout(tick, Math.max(0, next - performance.now()));
      };
      tick();
    };

    const get = async (url: string) => {
      const res = await fetch(`${base}${url}`, { headers: auth });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 200)}`);
    };
    const totalWeight = API_MIX.reduce((s, m) => s + m.weight, 0);
    const apiKind = (n: number) => {
      // A fixed, interleaved order (n * golden ratio mod 1): the same mix on every run.
      let r = ((n * 0.6180339887) % 1) * totalWeight;
      for (const m of API_MIX) {
        if (r < m.weight) return m.kind;
        r -= m.weight;
      }
      return API_MIX[0]!.kind;
    };
    const p = `/api/projects/${project.id}`;
    schedule(API_RATE, MAX_IN_FLIGHT.api, (n) => {
      const k = apiKind(n);
      const issue = 1 + (n % ISSUES);
      const fn: Record<string, () => Promise<void>> = {
        projects: () => get('/api/projects?limit=50'),
        'merge-requests': () => get(`${p}/merge-requests?limit=50`),
        tree: () => get(`${p}/tree?ref=main&path=src/pkg-${n % 40}`),
        pipelines: () => get(`${p}/pipelines?limit=50`),
        issue: () => get(`${p}/issues/${issue}`),
        comment: async () => {
          const res = await fetch(`${base}${p}/issues/${issue}/comments`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: JSON.stringify({ body: `comment ${n} from the mix` }),
          });
          const text = await res.text();
          if (res.status !== 201) throw new Error(`POST comment: ${res.status} ${text.slice(0, 200)}`);
        },
      };
      return { name: `api ${k}`, fn: fn[k]! };
    });
    const pullerBusy = pullers.map(() => Promise.resolve());
    schedule(PULL_RATE, MAX_IN_FLIGHT.pull, (n) => {
      if (n % 5 === 4) {
        return {
          name: 'git clone',
          fn: async () => {
            const target = path.join(dir, `clone-${n}`);
            await runGit(gitEnv, ['clone', '--quiet', '--no-checkout', remote, target]);
            rmSync(target, { recursive: true, force: true });
          },
        };
      }
      // A fetch in one of the clones; fetches of one clone run one after the other (git locks it).
      const i = n % pullers.length;
      const run = pullerBusy[i]!.then(() => runGit(gitEnv, ['fetch', '--quiet', 'origin'], pullers[i]));
      pullerBusy[i] = run.catch(() => {});
      return { name: 'git fetch', fn: () => run };
    });
    const pusherBusy = pushers.map(() => Promise.resolve());
    schedule(PUSH_RATE, MAX_IN_FLIGHT.push, (n) => {
      const i = n % pushers.length;
      const work = pushers[i]!;
      const run = pusherBusy[i]!.then(async () => {
        writeFileSync(path.join(work, `load-${i}.txt`), `push ${n}\n`);
        await runGit(gitEnv, ['commit', '--quiet', '-am', `push ${n}`], work).catch(async () => {
          await runGit(gitEnv, ['add', '-A'], work);
          await runGit(gitEnv, ['commit', '--quiet', '-m', `push ${n}`], work);
        });
        await runGit(gitEnv, ['push', '--quiet', 'origin', `HEAD:refs/heads/load-${i}`], work);
      });
      pusherBusy[i] = run.catch(() => {});
      return { name: 'git push', fn: () => run };
    });
    schedule(OTLP_REQUESTS_PER_SECOND, MAX_IN_FLIGHT.otlp, (n) => ({
      name: 'otlp logs (100 records)',
      fn: async () => {
        const now = BigInt(Date.now()) * 1_000_000n;
        const body = {
          resourceLogs: [
            {
              resource: {
                attributes: [
                  { key: 'service.name', value: { stringValue: `mix-svc-${n % 5}` } },
                  { key: 'platform.project_id', value: { stringValue: project.id } },
                ],
              },
              scopeLogs: [
                {
                  logRecords: Array.from({ length: OTLP_RECORDS_PER_REQUEST }, (_, i) => ({
                    timeUnixNano: String(now + BigInt(i)),
                    severityNumber: i % 10 === 0 ? 17 : 9,
                    severityText: i % 10 === 0 ? 'ERROR' : 'INFO',
                    body: {
                      stringValue: `request ${n}.${i} handled in ${(n * 7 + i) % 300} ms path=/orders/${i}`,
                    },
                    attributes: [{ key: 'http.route', value: { stringValue: `/orders/${i % 20}` } }],
                  })),
                },
              ],
            },
          ],
        };
        const res = await fetch(`${base}/v1/logs`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`POST /v1/logs: ${res.status} ${text.slice(0, 200)}`);
      },
    }));

    // Memory over time, and progress.
    const samples: { t: number; platform: number; postgres: number }[] = [];
    const sample = () => {
      const t = (performance.now() - started) / 60_000;
      const pg = postgresPids(clusterDir).reduce((s, q) => s + pssMb(q), 0);
      samples.push({ t, platform: rssMb(pid), postgres: pg });
      const done = [...kinds.values()].reduce((s, k) => s + k.latencies.length, 0);
      const errors = [...kinds.values()].reduce((s, k) => s + k.errors, 0);
      const last = samples.at(-1)!;
      ctx.progress(
        `mix: ${Math.round(t * 60)}/${seconds} s, ${done} done, ${errors} errors, platform RSS ${last.platform.toFixed(0)} MB, PostgreSQL PSS ${last.postgres.toFixed(0)} MB`,
      );
    };
    sample();
    const sampler = setInterval(sample, SAMPLE_MS);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    clearInterval(sampler);
    // The trend is over the load only: the sample after the drain (often after a GC) is left out.
    const secondHalf = samples.filter((s) => s.t >= seconds / 120);
    while (pending.size > 0) await Promise.allSettled([...pending]);
    const platformSlope = slopePerMinute(secondHalf.map((s) => ({ t: s.t, mb: s.platform })));
    const postgresSlope = slopePerMinute(secondHalf.map((s) => ({ t: s.t, mb: s.postgres })));
    const readLatencies = [...kinds.values()]
      .filter((k) => READS.has(k.name.replace(/^api /, '')))
      .flatMap((k) => k.latencies)
      .sort((a, b) => a - b);
    const errors = [...kinds.values()].reduce((s, k) => s + k.errors, 0);
    const notes: string[] = [];
    for (const k of [...kinds.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const s = k.stats();
      notes.push(
        `${k.name.padEnd(26)} ${String(s.n).padStart(6)} done   p50 ${s.p50.toFixed(1).padStart(7)} ms   p99 ${s.p99.toFixed(1).padStart(7)} ms   errors ${k.errors}${k.errorSamples.length ? ` (${k.errorSamples.join(' | ')})` : ''}`,
      );
    }
    notes.push(
      `memory every ${SAMPLE_MS / 1000} s (min: platform RSS MB / PostgreSQL PSS MB): ${samples
        .map((s) => `${s.t.toFixed(1)}: ${s.platform.toFixed(0)}/${s.postgres.toFixed(0)}`)
        .join(', ')}`,
      `trend over the second half (${secondHalf.length} samples): platform ${platformSlope.toFixed(2)} MB/min, PostgreSQL ${postgresSlope.toFixed(2)} MB/min`,
      `open loop: latency counts from each request's scheduled start; ${seconds} s; platform = \`node dist/src/main.js serve\` on a fresh embedded data dir, PLATFORM_LOG_LEVEL=warn; load generator and git clients on the same machine`,
    );

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
      value(
        'p99 of the API reads',
        'ms',
        percentile(readLatencies, 99),
        '<=',
        API_P99_GOAL_MS,
        `${readLatencies.length} reads, p50 ${percentile(readLatencies, 50).toFixed(1)} ms`,
      ),
      value('errors (every kind)', 'count', errors, '<=', 0),
      value(
        'platform RSS trend, second half',
        'MB/min',
        Math.abs(platformSlope),
        '<=',
        TREND_GOAL_MB_PER_MIN,
        `slope ${platformSlope.toFixed(2)}, last ${samples.at(-1)!.platform.toFixed(0)} MB`,
      ),
      value(
        'PostgreSQL PSS trend, second half',
        'MB/min',
        Math.abs(postgresSlope),
        '<=',
        TREND_GOAL_MB_PER_MIN,
        `slope ${postgresSlope.toFixed(2)}, last ${samples.at(-1)!.postgres.toFixed(0)} MB`,
      ),
    ];
    return { description: this.description, figures, met: figures.every((f) => f.met), notes };
  },
};
