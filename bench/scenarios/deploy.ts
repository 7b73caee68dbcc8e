/**
 * deploy: the local target of the deployer through a real `platform serve`: publish → healthy (from
 * the publishing pipeline's finish to the app's first answer on its route), manual rollback time
 * (request → the previous version answering), and failed requests of a client polling every 20 ms
 * through 20 consecutive cut-overs. The reference is the physical limit measured in the same run:
 * the same app started directly (`node server.js`) until its first answer.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

/** Not set by the issue: budgets that keep the figures honest. */
const PUBLISH_GOAL_MS = 3000;
const ROLLBACK_GOAL_MS = 3000;
const CUTOVERS = 20;
const ADMIN_USER = 'admin';
const ADMIN_PASSWORD = 'bench-admin-password';

const SERVER_JS = `require('node:http').createServer((q, s) => { s.writeHead(200); s.end(process.env.VERSION || 'direct'); })
  .listen(Number(process.env.PORT), '127.0.0.1');`;

function git(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`git ${args[0]}: ${err}`))));
  });
}

async function until(test: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function answers(url: string, expected?: string): Promise<boolean> {
  try {
    const res = await fetch(url);
    const text = await res.text();
    return res.status === 200 && (expected === undefined || text === expected);
  } catch {
    return false;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const deploy: Scenario = {
  name: 'deploy',
  description:
    'local target: publish → healthy, rollback time, failed requests during 20 cut-overs (poll every 20 ms)',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('bench-deploy-');
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

    // Reference: the same app started directly, until it answers (median of 5).
    const appDir = path.join(dir, 'direct');
    mkdirSync(appDir, { recursive: true });
    writeFileSync(path.join(appDir, 'server.js'), SERVER_JS);
    const direct: number[] = [];
    for (let i = 0; i < 5; i++) {
      const port = await ctx.freePort();
      const started = performance.now();
      const child = spawn(process.execPath, ['server.js'], {
        cwd: appDir,
        env: childEnv({ PORT: String(port) }),
        stdio: 'ignore',
      });
      await until(() => answers(`http://127.0.0.1:${port}/`), 10_000, 'the direct app');
      direct.push(performance.now() - started);
      child.kill('SIGKILL');
    }
    const reference = median(direct);

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
      }),
    });
    await server.waitReady(`${base}/readyz`, 180_000);
    const token = await loginToken(base, ADMIN_USER, ADMIN_PASSWORD, 'bench-deploy');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const project = await json<{ id: string; full_name: string }>(
      await fetch(`${base}/api/projects`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: 'bench-deploy' }),
      }),
      'create project',
    );
    const remote = new URL(`/${project.full_name}.git`, base);
    remote.username = ADMIN_USER;
    remote.password = token;
    const work = path.join(dir, 'work');
    await git(['clone', '-q', remote.toString(), work], dir, gitEnv);
    const files: Record<string, string> = {
      '.platform.yaml':
        'pipeline:\n  steps:\n    - name: bundle\n      commands: ["tar czf app.tgz -C app ."]\n      publish: { artifact: app.tgz, environment: bench }\n',
      'app/server.js': SERVER_JS,
      'deploy/app.yaml':
        'kind: LocalProcess\ncommand: node\nargs: [server.js]\nenv:\n  VERSION: "{{ values.version }}"\ndrain_seconds: 2\n',
      'deploy/values.yaml': 'version: v1\n',
    };
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
      writeFileSync(path.join(work, name), content);
    }
    await git(['add', '-A'], work, gitEnv);
    await git(['commit', '-q', '-m', 'v1'], work, gitEnv);
    await git(['push', '-q', 'origin', 'HEAD:refs/heads/main'], work, gitEnv);
    const appUrl = `${base}/apps/${project.full_name}/bench/`;
    const api = `${base}/api/projects/${project.id}`;

    ctx.progress('publish → healthy');
    let finishedAt = 0;
    await until(
      async () => {
        const list = await json<{ items: { status: string; finished_at: string | null }[] }>(
          await fetch(`${api}/pipelines`, { headers }),
          'pipelines',
        );
        const p = list.items[0];
        if (p?.status === 'success' && p.finished_at) finishedAt = new Date(p.finished_at).getTime();
        return finishedAt > 0;
      },
      120_000,
      'the publishing pipeline',
    );
    await until(() => answers(appUrl, 'v1'), 120_000, 'v1 on its route');
    const publishToHealthy = Date.now() - finishedAt;

    ctx.progress(`${CUTOVERS} cut-overs with a client polling every 20 ms`);
    let failures = 0;
    let requests = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if (!(await answers(appUrl))) failures++;
        requests++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const cutover: number[] = [];
    for (let i = 2; i < CUTOVERS + 2; i++) {
      const started = performance.now();
      await json(
        await fetch(`${api}/deployments/bench`, {
          method: 'PATCH',
          headers,
          body: JSON.stringify({ values_override: { version: `v${i}` } }),
        }),
        'patch',
      );
      await until(() => answers(appUrl, `v${i}`), 60_000, `v${i} on its route`);
      cutover.push(performance.now() - started);
      // The next change waits for the deployment to be reconciled (healthy), as a user's would.
      await until(
        async () => {
          const d = await json<{ current_status: string; generation: number; observed_generation: number }>(
            await fetch(`${api}/deployments/bench`, { headers }),
            'deployment',
          );
          return d.current_status === 'healthy' && d.generation === d.observed_generation;
        },
        60_000,
        'healthy',
      );
    }
    polling = false;
    await poller;

    ctx.progress('rollback');
    const rbStarted = performance.now();
    await json(
      await fetch(`${api}/deployments/bench/rollback`, { method: 'POST', headers, body: '{}' }),
      'rollback',
    );
    await until(() => answers(appUrl, `v${CUTOVERS}`), 60_000, 'the previous version');
    const rollback = performance.now() - rbStarted;

    const figures: Figure[] = [
      {
        name: 'publish → healthy: pipeline finished → first answer on /apps/…',
        unit: 'ms',
        reference: {
          label: 'the same app started directly until it answers (median of 5)',
          value: reference,
        },
        platform: {
          label: 'reconcile, unpack, sandboxed start, health, route switch',
          value: publishToHealthy,
        },
        ratio: publishToHealthy / reference,
        goal: { on: 'value', op: '<=', value: PUBLISH_GOAL_MS },
        met: publishToHealthy <= PUBLISH_GOAL_MS,
      },
      {
        name: 'manual rollback: request → the previous version answers',
        unit: 'ms',
        reference: {
          label: 'the same app started directly until it answers (median of 5)',
          value: reference,
        },
        platform: { label: 'POST …/rollback → previous version on its route', value: rollback },
        ratio: rollback / reference,
        goal: { on: 'value', op: '<=', value: ROLLBACK_GOAL_MS },
        met: rollback <= ROLLBACK_GOAL_MS,
      },
      {
        name: `failed requests during ${CUTOVERS} consecutive cut-overs`,
        unit: 'requests',
        reference: null,
        platform: { label: `client polling every 20 ms (${requests} requests)`, value: failures },
        ratio: null,
        goal: { on: 'value', op: '<=', value: 0 },
        met: failures === 0,
      },
    ];
    return {
      description: deploy.description,
      figures,
      met: figures.every((f) => f.met),
      notes: [
        `cut-over (PATCH → new version answering), median ${median(cutover).toFixed(0)} ms, max ${Math.max(...cutover).toFixed(0)} ms; it includes rendering from the project's deploy/ at the commit, the sandboxed start and the health wait (polled every 100 ms)`,
        `direct starts: ${direct.map((m) => m.toFixed(0)).join(', ')} ms`,
      ],
    };
  },
};
