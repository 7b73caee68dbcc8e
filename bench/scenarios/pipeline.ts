/**
 * pipeline: a pipeline of 10 trivial steps (`true`, each depending on the previous one) run by the
 * platform — from the moment it is queued to the moment it is finished — against a shell script that
 * clones the same commit and runs the same 10 commands, measured in the same run; plus the p50
 * latency from the start of a `git push` to the start of the pipeline's first step, over 20 pushes.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const RATIO_GOAL = 2;
/** Not set by the issue; a budget that keeps the figure honest. */
const LATENCY_GOAL_MS = 1000;
const STEPS = 10;
const RUNS = 7;
const PUSHES = 20;
const ADMIN_USER = 'admin';
const ADMIN_PASSWORD = 'bench-admin-password';

interface PipelineBody {
  id: string;
  status: string;
  commit_sha: string;
  created_at: string;
  finished_at: string | null;
  steps: { started_at: string | null; finished_at: string | null; duration_ms: number | null }[];
}

/** Where a run's time went, from its step rows: before the first step, per step, between steps, after the last. */
function breakdown(p: PipelineBody): { setup: number; step: number[]; handoff: number[]; teardown: number } {
  const t = (s: string | null) => new Date(s!).getTime();
  const steps = p.steps;
  return {
    setup: t(steps[0]!.started_at) - t(p.created_at),
    step: steps.map((s) => s.duration_ms ?? t(s.finished_at) - t(s.started_at)),
    handoff: steps.slice(1).map((s, i) => t(s.started_at) - t(steps[i]!.finished_at)),
    teardown: t(p.finished_at) - t(steps[steps.length - 1]!.finished_at),
  };
}

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-10_000);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stderr, ms: performance.now() - started }));
  });
}

async function ok(command: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }) {
  const r = await run(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const pipeline: Scenario = {
  name: 'pipeline',
  description: `${STEPS} trivial steps through the engine vs a shell script (clone + the same commands); push-to-first-step latency`,
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('bench-pipeline-');
    const gitEnv = childEnv({
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_TERMINAL_PROMPT: '0',
      GIT_AUTHOR_NAME: 'Bench',
      GIT_AUTHOR_EMAIL: 'bench@example.test',
      GIT_COMMITTER_NAME: 'Bench',
      GIT_COMMITTER_EMAIL: 'bench@example.test',
      HOME: dir,
    });

    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    const dataDir = path.join(dir, 'data');
    ctx.progress('platform: starting');
    const server = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: dataDir,
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
        // BENCH_RUNNER_BWRAP=never measures the engine without the sandbox's cost.
        PLATFORM_RUNNER_BWRAP: process.env.BENCH_RUNNER_BWRAP ?? 'auto',
      }),
    });
    await server.waitReady(`${base}/readyz`, 180_000);
    const token = await loginToken(base, ADMIN_USER, ADMIN_PASSWORD, 'bench-pipeline');
    const auth = { authorization: `Bearer ${token}` };
    const project = await json<{ id: string; full_name: string }>(
      await fetch(`${base}/api/projects`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ name: 'bench-pipeline' }),
      }),
      'create project',
    );
    const bareRepo = path.join(dataDir, 'repos', `${project.full_name}.git`);
    const remote = new URL(`/${project.full_name}.git`, base);
    remote.username = ADMIN_USER;
    remote.password = token;

    const work = path.join(dir, 'work');
    mkdirSync(work);
    await ok('git', ['init', '-q', '-b', 'main'], { cwd: work, env: gitEnv });
    const steps = Array.from({ length: STEPS }, (_, i) =>
      [
        `    - name: s${i + 1}`,
        '      commands: ["true"]',
        ...(i > 0 ? [`      depends_on: [s${i}]`] : []),
      ].join('\n'),
    );
    writeFileSync(path.join(work, '.platform.yaml'), `pipeline:\n  steps:\n${steps.join('\n')}\n`);
    await ok('git', ['add', '-A'], { cwd: work, env: gitEnv });

    const pipelineOf = async (sha: string): Promise<PipelineBody> => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const list = await json<{ items: PipelineBody[] }>(
          await fetch(`${base}/api/projects/${project.id}/pipelines?limit=5`, { headers: auth }),
          'list pipelines',
        );
        const found = list.items.find((p) => p.commit_sha === sha);
        if (found && ['success', 'failure', 'cancelled'].includes(found.status)) {
          const full = await json<PipelineBody>(
            await fetch(`${base}/api/projects/${project.id}/pipelines/${found.id}`, { headers: auth }),
            'get pipeline',
          );
          if (full.status !== 'success') throw new Error(`pipeline ${full.id} ended ${full.status}`);
          return full;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no finished pipeline for ${sha} within 60 s`);
    };
    const commitAndPush = async (message: string): Promise<{ sha: string; pushStartedAt: number }> => {
      await ok('git', ['commit', '-q', '--allow-empty', '-m', message], { cwd: work, env: gitEnv });
      const sha = (
        await new Promise<string>((resolve, reject) => {
          const c = spawn('git', ['rev-parse', 'HEAD'], { cwd: work, env: gitEnv });
          let out = '';
          c.stdout.on('data', (d: Buffer) => {
            out += d.toString();
          });
          c.once('error', reject);
          c.once('close', () => resolve(out));
        })
      ).trim();
      const pushStartedAt = Date.now();
      await ok('git', ['push', '-q', remote.toString(), 'HEAD:refs/heads/main'], { cwd: work, env: gitEnv });
      return { sha, pushStartedAt };
    };

    // The reference: what a pipeline does, by hand — clone the commit, run the commands one by one,
    // each in its own `sh -c` with `set -e` as the runner does.
    const script = path.join(dir, 'reference.sh');
    writeFileSync(
      script,
      [
        'set -e',
        'rm -rf "$1/checkout"',
        'git clone -q --no-checkout "$2" "$1/checkout"',
        'git -C "$1/checkout" checkout -q "$3"',
        'cd "$1/checkout"',
        ...Array.from({ length: STEPS }, () => "sh -c 'set -e; true'"),
        '',
      ].join('\n'),
    );

    const platformMs: number[] = [];
    const referenceMs: number[] = [];
    const parts: ReturnType<typeof breakdown>[] = [];
    ctx.progress(`pipeline: ${RUNS} runs of ${STEPS} steps, interleaved with the shell script`);
    for (let i = 0; i < RUNS; i++) {
      const { sha } = await commitAndPush(`run ${i}`);
      const p = await pipelineOf(sha);
      platformMs.push(new Date(p.finished_at!).getTime() - new Date(p.created_at).getTime());
      parts.push(breakdown(p));
      const ref = await ok('sh', [script, dir, bareRepo, sha], { env: gitEnv });
      referenceMs.push(ref.ms);
    }

    ctx.progress(`latency: ${PUSHES} pushes, each waited for`);
    const latencies: number[] = [];
    for (let i = 0; i < PUSHES; i++) {
      const { sha, pushStartedAt } = await commitAndPush(`latency ${i}`);
      const p = await pipelineOf(sha);
      latencies.push(new Date(p.steps[0]!.started_at!).getTime() - pushStartedAt);
    }

    const platform = median(platformMs);
    const reference = median(referenceMs);
    const ratio = platform / reference;
    const perStep = median(parts.flatMap((b) => b.step));
    const handoff = median(parts.flatMap((b) => b.handoff));
    const latency = median(latencies);
    const figures: Figure[] = [
      {
        name: `${STEPS} trivial steps: queued → finished (median of ${RUNS})`,
        unit: 'ms',
        reference: { label: 'shell script: clone + the same commands', value: reference },
        platform: { label: 'pipeline engine (local runner)', value: platform },
        ratio,
        goal: { on: 'ratio', op: '<=', value: RATIO_GOAL },
        met: ratio <= RATIO_GOAL,
      },
      {
        name: `push → first step started (p50 of ${PUSHES} pushes)`,
        unit: 'ms',
        reference: null,
        platform: {
          label: 'git push start → step 1 started_at',
          value: latency,
          detail: `min ${Math.min(...latencies).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms`,
        },
        ratio: null,
        goal: { on: 'value', op: '<=', value: LATENCY_GOAL_MS },
        met: latency <= LATENCY_GOAL_MS,
      },
    ];
    return {
      description: pipeline.description,
      figures,
      met: figures.every((f) => f.met),
      notes: [
        `steps are chained (each depends on the previous): no parallelism helps the engine`,
        `engine overhead per step: ${((platform - reference) / STEPS).toFixed(1)} ms ((engine − script) / ${STEPS}); a step \`true\` takes ${perStep.toFixed(1)} ms start to exit through the sandbox's supervisor (median), ${handoff.toFixed(1)} ms from one step's end to the next one's start`,
        `where a run's time went (median): ${median(parts.map((b) => b.setup)).toFixed(0)} ms queued → first step started (claim, clone, sandbox), ${median(parts.map((b) => b.step.reduce((a, x) => a + x, 0) + b.handoff.reduce((a, x) => a + x, 0))).toFixed(0)} ms for the ${STEPS} steps, ${median(parts.map((b) => b.teardown)).toFixed(0)} ms last step → finished (logs stored, final transaction)`,
        `engine runs: ${platformMs.map((m) => m.toFixed(0)).join(', ')} ms; script runs: ${referenceMs.map((m) => m.toFixed(0)).join(', ')} ms`,
        `runner_bwrap=${process.env.BENCH_RUNNER_BWRAP ?? 'auto'} (auto: steps run in bubblewrap when it is installed, as in production)`,
      ],
    };
  },
};
