/**
 * agent: (1) POST /api/projects/:id/sessions → the agent process started (it reports its start
 * time, sub-millisecond wall clock, to a receiver here), p50 and p99 over 20 sessions, against the
 * same fake agent started directly with spawn() (the physical floor of starting that process and
 * hearing from it); (2) fan-out latency from the agent writing a stdout line to 10 WebSocket
 * watchers receiving its event (the line carries its write time), p99 over every delivery; goal:
 * an absolute bound (nothing comparable to measure beside it).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';
const SESSIONS = 20;
const WATCHERS = 10;
const LINES = 200;
/** Not set by the issue: a session starts (sandbox + clone + process) within a few times a bare spawn. */
const START_RATIO_GOAL = 10;
const FANOUT_P99_GOAL_MS = 250;
const now = () => performance.timeOrigin + performance.now();

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

export const agent: Scenario = {
  name: 'agent',
  description: `POST → agent process started (p50/p99 over ${SESSIONS} sessions) vs a bare spawn; stdout → WebSocket fan-out p99 with ${WATCHERS} watchers`,
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('bench-agent-');
    const fixtures = path.join(repoRoot, 'test', 'fixtures');
    const fake = path.join(fixtures, 'fake-claude-bench.mjs');
    // The agent reports its start here: `t` of each report, keyed by arrival order.
    const reports: Array<{ t: number }> = [];
    let onReport: (() => void) | null = null;
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        reports.push(JSON.parse(body) as { t: number });
        res.end();
        onReport?.();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const reportUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`;
    const nextReport = () =>
      new Promise<{ t: number }>((resolve) => {
        const before = reports.length;
        onReport = () => {
          if (reports.length > before) resolve(reports[before]!);
        };
      });

    try {
      // Reference: the same fake started directly, to its report.
      const reference: number[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        const waiting = nextReport();
        const t0 = now();
        const child = spawn(process.execPath, [fake], {
          env: childEnv({ FAKE_REPORT_URL: reportUrl }),
          stdio: ['pipe', 'ignore', 'ignore'],
        });
        const { t } = await waiting;
        reference.push(t - t0);
        child.stdin.end();
        await new Promise((r) => child.once('close', r));
      }

      const port = await ctx.freePort();
      const base = `http://127.0.0.1:${port}`;
      ctx.progress('platform: starting');
      const server = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
        cwd: repoRoot,
        env: childEnv({
          PLATFORM_DATA_DIR: path.join(dir, 'data'),
          PLATFORM_HOST: '127.0.0.1',
          PLATFORM_PORT: String(port),
          PLATFORM_PUBLIC_URL: base,
          PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
          PLATFORM_LOG_LEVEL: 'warn',
          PLATFORM_RUNNER_READONLY_PATHS: fixtures,
          PLATFORM_RUNNER_BWRAP: process.env.BENCH_RUNNER_BWRAP ?? 'auto',
        }),
      });
      await server.waitReady(`${base}/readyz`, 180_000);
      const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench-agent');
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const call = async <T>(method: string, url: string, body?: unknown) =>
        json<T>(
          await fetch(`${base}${url}`, { method, headers, body: body ? JSON.stringify(body) : undefined }),
          `${method} ${url}`,
        );
      await call('PATCH', '/api/agent-settings', { claude_command: fake, sessions_per_user_per_hour: 1000 });
      const project = await call<{ id: string }>('POST', '/api/projects', { name: 'bench-agent' });
      await call('POST', `/api/projects/${project.id}/secrets`, {
        name: 'FAKE_REPORT_URL',
        value: reportUrl,
        scope: 'agent',
      });
      const work = path.join(dir, 'work');
      mkdirSync(work);
      const gitEnv = childEnv({ GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: dir });
      const g = (...args: string[]) => execFileSync('git', args, { cwd: work, env: gitEnv, stdio: 'pipe' });
      g('init', '-q', '-b', 'main');
      writeFileSync(path.join(work, 'README.md'), 'bench\n');
      g('add', '-A');
      g('-c', 'user.name=b', '-c', 'user.email=b@x', 'commit', '-q', '-m', 'init');
      g(
        'push',
        '-q',
        `http://admin:${token}@127.0.0.1:${port}/admin/bench-agent.git`,
        'HEAD:refs/heads/main',
      );

      const waitEnded = async (sid: string) => {
        for (;;) {
          const s = await call<{ status: string }>(
            'GET',
            `/api/projects/${project.id}/sessions/${sid}?limit=1`,
          );
          if (s.status !== 'pending' && s.status !== 'running') return s.status;
          await new Promise((r) => setTimeout(r, 20));
        }
      };

      ctx.progress(`start latency: ${SESSIONS} sessions`);
      const startLatency: number[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        const waiting = nextReport();
        const t0 = now();
        const s = await call<{ id: string }>('POST', `/api/projects/${project.id}/sessions`, {
          prompt: 'bench start',
        });
        const { t } = await waiting;
        startLatency.push(t - t0);
        await waitEnded(s.id);
      }

      ctx.progress(`fan-out: ${LINES} lines to ${WATCHERS} watchers`);
      const s = await call<{ id: string }>('POST', `/api/projects/${project.id}/sessions`, {
        prompt: `stream:${LINES} gap:5 delay:3000`,
        provider_config: { idle_seconds: 5 },
      });
      const latencies: number[] = [];
      const sockets = await Promise.all(
        Array.from({ length: WATCHERS }, async () => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/api/projects/${project.id}/sessions/${s.id}/ws`, {
            headers: { authorization: `Bearer ${token}` },
          });
          ws.on('message', (data) => {
            const received = now();
            const m = JSON.parse(String(data)) as { type: string; kind?: string; content?: string };
            const match =
              m.type === 'event' && m.kind === 'text' ? /^tick \d+ ([\d.]+)$/.exec(m.content ?? '') : null;
            if (match) latencies.push(received - Number(match[1]));
          });
          await new Promise((r, j) => {
            ws.once('open', r);
            ws.once('error', j);
          });
          return ws;
        }),
      );
      await waitEnded(s.id);
      for (const ws of sockets) ws.close();
      // The fake waits 3 s before its first line: every watcher is connected by then (no replays).
      const live = latencies.length;

      const figures: Figure[] = [
        {
          name: 'POST → agent process started, p50',
          unit: 'ms',
          reference: { label: 'bare spawn of the same fake, p50', value: quantile(reference, 0.5) },
          platform: {
            label: 'session (identity, clone, sandbox, process)',
            value: quantile(startLatency, 0.5),
          },
          ratio: quantile(startLatency, 0.5) / quantile(reference, 0.5),
          goal: { on: 'ratio', op: '<=', value: START_RATIO_GOAL },
          met: quantile(startLatency, 0.5) / quantile(reference, 0.5) <= START_RATIO_GOAL,
        },
        {
          name: 'POST → agent process started, p99',
          unit: 'ms',
          reference: { label: 'bare spawn of the same fake, p99', value: quantile(reference, 0.99) },
          platform: { label: 'session', value: quantile(startLatency, 0.99) },
          ratio: quantile(startLatency, 0.99) / quantile(reference, 0.99),
          goal: { on: 'ratio', op: '<=', value: START_RATIO_GOAL },
          met: quantile(startLatency, 0.99) / quantile(reference, 0.99) <= START_RATIO_GOAL,
        },
        {
          name: `stdout line → WebSocket watcher, p99 (${WATCHERS} watchers)`,
          unit: 'ms',
          reference: null,
          platform: {
            label: `${live} deliveries`,
            value: quantile(latencies, 0.99),
            detail: `p50 ${quantile(latencies, 0.5).toFixed(1)} ms`,
          },
          ratio: null,
          goal: { on: 'value', op: '<=', value: FANOUT_P99_GOAL_MS },
          met: quantile(latencies, 0.99) <= FANOUT_P99_GOAL_MS,
        },
      ];
      return {
        description: this.description,
        figures,
        met: figures.every((f) => f.met),
        notes: [
          'start: from sending the POST to the agent process reporting in (includes identity, clone, sandbox start)',
          'fan-out: wall clock of the write (in the agent) to the message event on each watcher; same machine',
          `reference start p50 ${quantile(reference, 0.5).toFixed(1)} ms is node starting the fake and its first HTTP request`,
        ],
      };
    } finally {
      receiver.close();
    }
  },
};
