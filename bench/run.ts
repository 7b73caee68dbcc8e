/**
 * `npm run bench [-- <scenario>...]`: runs the named scenarios (default: all), prints for each the
 * platform's figure, the reference measured in the same run and their ratio against the goal, and
 * writes bench/results/latest.json. Servers run as separate child processes; the load generator
 * (autocannon) runs here.
 *
 * Settings (environment): BENCH_DURATION (seconds per measurement, default 10), BENCH_WARMUP
 * (seconds, default 2), BENCH_CONNECTIONS (default 32).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { runningPostmaster } from '../src/store/embedded.js';
import { agent } from './scenarios/agent.js';
import { apiAuth } from './scenarios/api-auth.js';
import { deploy } from './scenarios/deploy.js';
import { footprint } from './scenarios/footprint.js';
import { git } from './scenarios/git.js';
import { mcp } from './scenarios/mcp.js';
import { mix } from './scenarios/mix.js';
import { observe } from './scenarios/observe.js';
import { observeAlerts } from './scenarios/observe-alerts.js';
import { pipeline } from './scenarios/pipeline.js';
import { web } from './scenarios/web.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The environment of a child: PATH/HOME and what we set, nothing inherited from PLATFORM_*. */
export const childEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/',
  NODE_ENV: 'production',
  ...extra,
});

export async function json<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Logs in as `user` and creates an API token (shown once): what every scenario needs first. */
export async function loginToken(
  base: string,
  user: string,
  password: string,
  tokenName: string,
): Promise<string> {
  const login = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: user, password }),
  });
  await json(login, 'login');
  const cookie = login.headers.get('set-cookie')?.split(';')[0];
  if (!cookie) throw new Error('login answered without a session cookie');
  const { token } = await json<{ token: string }>(
    await fetch(`${base}/api/tokens`, {
      method: 'POST',
      // A cookie-authenticated mutation must say it comes from the platform's own origin.
      headers: { 'content-type': 'application/json', cookie, origin: new URL(base).origin },
      body: JSON.stringify({ name: tokenName }),
    }),
    'create token',
  );
  return token;
}

let built: Promise<void> | undefined;
/**
 * The platform as users run it (`npm start`): compiled to dist/ by `npm run build`, run with plain
 * node. Built once per bench run, so the figures never measure a stale build or a transpiler.
 */
export async function platformServeCommand(progress: (m: string) => void): Promise<[string, string[]]> {
  built ??= new Promise<void>((resolve, reject) => {
    progress('building dist/ (npm run build)');
    const child = spawn('npm', ['run', 'build', '--silent'], {
      cwd: repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`npm run build failed (${code})`)),
    );
  });
  await built;
  return [process.execPath, [path.join(repoRoot, 'dist', 'src', 'main.js'), 'serve']];
}

export interface LoadSettings {
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
}

/** One measured target: throughput and latency of the load generator's run against it. */
export interface Measurement {
  label: string;
  url: string;
  requestsPerSecond: number;
  requestsTotal: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyAverageMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationSeconds: number;
}

export interface ScenarioResult {
  description: string;
  reference: Measurement;
  platform: Measurement;
  /** platform / reference, on requests per second. */
  ratio: number;
  goal: number;
  met: boolean;
  notes: string[];
}

/** One compared figure of a {@link ComparisonResult} (a timing, a memory growth…). */
export interface Figure {
  name: string;
  unit: string;
  /** The physical limit measured in the same run; null when the goal is an absolute bound. */
  reference: { label: string; value: number; detail?: string } | null;
  platform: { label: string; value: number; detail?: string };
  /** platform / reference, or null without a reference. */
  ratio: number | null;
  /** What the goal bounds: the ratio, or the platform's value itself (in `unit`). */
  goal: { on: 'ratio' | 'value'; op: '<=' | '>=' | '<'; value: number };
  met: boolean;
}

/** The result of a scenario measuring several figures (e.g. wall times, lower is better) rather than one throughput. */
export interface ComparisonResult {
  description: string;
  figures: Figure[];
  /** Every figure met its goal. */
  met: boolean;
  notes: string[];
}

export type AnyScenarioResult = ScenarioResult | ComparisonResult;

export interface BenchContext {
  settings: LoadSettings;
  /** A line of progress on stderr (long runs show they are alive). */
  progress(message: string): void;
  /** Warm-up, then the measured run, against one URL. */
  measure(label: string, url: string, headers?: Record<string, string>): Promise<Measurement>;
  /** Starts a server process (own process group); it is killed when the scenario ends, whatever happens. */
  spawnServer(
    command: string,
    args: string[],
    options: { env: NodeJS.ProcessEnv; cwd?: string },
  ): ServerProcess;
  /** A temp directory removed when the scenario ends. */
  tempDir(prefix: string): string;
  freePort(): Promise<number>;
}

export interface Scenario {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<AnyScenarioResult>;
}

export interface ServerProcess {
  child: ChildProcess;
  output(): string;
  /** Polls `url` until it answers 200 or the deadline passes (fails fast if the process exits). */
  waitReady(url: string, timeoutMs?: number): Promise<void>;
}

function settingFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

const progress = (message: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

function runAutocannon(
  url: string,
  headers: Record<string, string>,
  connections: number,
  durationSeconds: number,
  onTick?: (elapsedSeconds: number, requests: number) => void,
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    let requests = 0;
    let seconds = 0;
    const instance = autocannon({ url, connections, duration: durationSeconds, headers }, (err, result) =>
      err ? reject(err) : resolve(result),
    );
    instance.on('response', () => {
      requests++;
    });
    instance.on('tick', () => {
      seconds++;
      onTick?.(seconds, requests);
    });
  });
}

async function measure(
  settings: LoadSettings,
  label: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<Measurement> {
  progress(`${label}: warm-up ${settings.warmupSeconds} s`);
  await runAutocannon(url, headers, settings.connections, settings.warmupSeconds);
  progress(`${label}: measuring ${settings.durationSeconds} s with ${settings.connections} connections`);
  const every = Math.max(1, Math.round(settings.durationSeconds / 5));
  const result = await runAutocannon(url, headers, settings.connections, settings.durationSeconds, (s, n) => {
    if (s % every === 0 && s < settings.durationSeconds) progress(`${label}: ${s} s, ${n} requests`);
  });
  const m: Measurement = {
    label,
    url,
    requestsPerSecond: result.requests.average,
    requestsTotal: result.requests.total,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    latencyAverageMs: result.latency.average,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: result.duration,
  };
  if (m.non2xx > 0 || m.errors > 0)
    throw new Error(
      `${label}: ${m.non2xx} non-2xx answers and ${m.errors} errors — the figures would be wrong`,
    );
  return m;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Children and temp dirs of the running scenario; released even on Ctrl-C. */
const children = new Set<ChildProcess>();
const dirs = new Set<string>();

function release(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of dirs) {
    // A killed platform leaves its embedded PostgreSQL running: stop it before removing its files.
    for (const cluster of [path.join(dir, 'data', 'postgres'), path.join(dir, 'postgres')]) {
      const pid = runningPostmaster(cluster);
      if (pid) process.kill(pid, 'SIGQUIT');
    }
    rmSync(dir, { recursive: true, force: true });
  }
  dirs.clear();
}

function spawnServer(
  command: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string },
): ServerProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    output: () => output,
    waitReady: async (url, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (exited()) throw new Error(`${command} ${args.join(' ')} exited before ready:\n${output}`);
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
          await res.arrayBuffer();
          if (res.status === 200) return;
        } catch {
          // not up yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${url} not ready within ${timeoutMs} ms:\n${output}`);
    },
  };
}

function formatMeasurement(m: Measurement): string {
  return `${m.label.padEnd(44)} ${m.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${m.latencyP50Ms
    .toFixed(1)
    .padStart(6)} ms   p99 ${m.latencyP99Ms.toFixed(1).padStart(6)} ms`;
}

function formatFigure(f: Figure): string[] {
  const value = (v: number) => `${v.toFixed(2).padStart(9)} ${f.unit}`;
  const line = (role: string, m: { label: string; value: number; detail?: string }) =>
    `    ${role.padEnd(10)} ${m.label.padEnd(44)} ${value(m.value)}${m.detail ? `   (${m.detail})` : ''}`;
  const verdict = f.met ? 'MET' : 'NOT MET';
  const op = { '<=': '≤', '>=': '≥', '<': '<' }[f.goal.op];
  return [
    `  ${f.name}`,
    ...(f.reference ? [line('reference', f.reference)] : []),
    line('platform', f.platform),
    f.goal.on === 'ratio' && f.ratio !== null
      ? `    ${'ratio'.padEnd(10)} ${f.ratio.toFixed(2)} (goal ${op} ${f.goal.value}) ${verdict}`
      : `    ${'goal'.padEnd(10)} ${op} ${f.goal.value} ${f.unit} ${verdict}`,
  ];
}

function formatResult(scenario: Scenario, result: AnyScenarioResult): string {
  const body =
    'figures' in result
      ? result.figures.flatMap(formatFigure)
      : [
          `  reference  ${formatMeasurement(result.reference)}`,
          `  platform   ${formatMeasurement(result.platform)}`,
          `  ratio      ${result.ratio.toFixed(2)} (goal ≥ ${result.goal}) ${result.met ? 'MET' : 'NOT MET'}`,
        ];
  return [
    '',
    `${scenario.name} — ${scenario.description}`,
    ...body,
    ...result.notes.map((n) => `  note: ${n}`),
    '',
  ].join('\n');
}

/** Every scenario, in the order `npm run bench` runs them. */
const scenarios: Scenario[] = [
  apiAuth,
  git,
  pipeline,
  footprint,
  web,
  deploy,
  mcp,
  observe,
  observeAlerts,
  agent,
  mix,
];

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((name) => !scenarios.some((s) => s.name === name));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown scenario(s): ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  const selected = argv.length > 0 ? scenarios.filter((s) => argv.includes(s.name)) : scenarios;
  const settings: LoadSettings = {
    durationSeconds: settingFromEnv('BENCH_DURATION', 10),
    warmupSeconds: settingFromEnv('BENCH_WARMUP', 2),
    connections: settingFromEnv('BENCH_CONNECTIONS', 32),
  };
  const ctx: BenchContext = {
    settings,
    progress,
    measure: (label, url, headers) => measure(settings, label, url, headers),
    spawnServer,
    tempDir: (prefix) => {
      const dir = mkdtempSync(path.join(tmpdir(), prefix));
      // mkdtemp makes 0700; run as root, the step sandbox and the embedded PostgreSQL run as
      // unprivileged users that must be able to pass through to their directories.
      chmodSync(dir, 0o711);
      dirs.add(dir);
      return dir;
    },
    freePort,
  };

  const startedAt = new Date().toISOString();
  const results: Record<string, AnyScenarioResult> = {};
  let failed = false;
  for (const scenario of selected) {
    progress(`scenario ${scenario.name}: ${scenario.description}`);
    try {
      const result = await scenario.run(ctx);
      results[scenario.name] = result;
      process.stdout.write(formatResult(scenario, result));
    } catch (err) {
      failed = true;
      process.stderr.write(`scenario ${scenario.name} failed: ${(err as Error).stack ?? String(err)}\n`);
    } finally {
      release();
    }
  }

  const resultsDir = path.join(repoRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, 'latest.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        started_at: startedAt,
        finished_at: new Date().toISOString(),
        host: {
          node: process.version,
          platform: process.platform,
          cpus: cpus().length,
          cpu: cpus()[0]?.model,
        },
        settings,
        scenarios: results,
      },
      null,
      2,
    )}\n`,
  );
  progress(`results written to ${path.relative(process.cwd(), file)}`);
  return failed ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    release();
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    release();
    process.exit(code);
  },
  (err: unknown) => {
    release();
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
