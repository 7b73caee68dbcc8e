/**
 * The README's tour as a newcomer runs it: every ```sh tour block, in order, in one bash, against a
 * freshly started `platform serve` (temp data dir, free port, the printed admin password). The only
 * changes to the text are the port (`localhost:8080` → the test's port), the password placeholder
 * and the webhook receiver's port. A failing command stops the tour and is named in the failure, with
 * the output so far; a hanging one is named when the tour's deadline passes.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { servicesMissing, storeMode } from './helpers/app.js';
import {
  childEnv,
  freePort,
  killAllChildren,
  makeTempDir,
  removeTempDirs,
  repoRoot,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

/** The bodies of the ```sh tour blocks, in order. */
function tourBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh tour\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

// About 30 s on an idle machine; the margin is for a loaded CI box.
const TOUR_DEADLINE_MS = 150_000;

/**
 * Runs the script with bash in its own process group; the last command bash started is traced to a
 * file so a failure or the deadline can name it.
 */
async function runTour(
  script: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string; lastCommand: string; timedOut: boolean }> {
  const trace = path.join(cwd, '.tour-trace');
  const prelude = [
    'set -Eeuo pipefail',
    // An HTTP error fails the command (with the answer's body shown); nothing waits forever.
    'curl() { command curl --fail-with-body --max-time 30 "$@"; }',
    `exec 9>${JSON.stringify(trace)}; BASH_XTRACEFD=9; PS4='+ '; set -x`,
    '',
  ].join('\n');
  const file = path.join(cwd, 'tour.sh');
  writeFileSync(file, prelude + script);
  const child = spawn('bash', [file], {
    cwd,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.kill(-child.pid!, 'SIGKILL');
  }, TOUR_DEADLINE_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  try {
    process.kill(-child.pid!, 'SIGKILL'); // the webhook receiver, if the tour stopped before killing it
  } catch {
    // already gone
  }
  let traced = '';
  try {
    traced = readFileSync(trace, 'utf8');
  } catch {
    // bash never started
  }
  // The last top-level command (one `+ `); nested `++` lines are its command substitutions.
  const commands = traced.split('\n').filter((l) => l.startsWith('+'));
  const lastCommand = commands.filter((l) => /^\+ /.test(l)).at(-1) ?? commands.at(-1) ?? '(none)';
  return { code, output, lastCommand, timedOut };
}

describe('README tour blocks', () => {
  it('are marked and cover login, project, push, pipeline, review, issues and webhooks', () => {
    const tour = tourBlocks(readme).join('\n');
    expect(tourBlocks(readme).length).toBeGreaterThanOrEqual(5);
    for (const part of [
      '/api/auth/login',
      '/api/tokens',
      '/api/projects',
      'git push',
      '/pipelines/$PIPELINE',
      '/merge-requests/$MR/reviews',
      '/merge-requests/$MR/merge',
      '/issues/$ISSUE/comments',
      '/webhooks/$HOOK/deliveries',
      '127.0.0.1:9000',
    ])
      expect(tour).toContain(part);
    // Every id is obtained by a shown command, never a placeholder to fill in.
    expect(tour).not.toMatch(/<(id|pid|sid)>|plat_api_…"/);
    expect(readme).toContain('PLATFORM_OUTBOUND_ALLOW_LIST=127.0.0.1');
  });
});

describe.skipIf(servicesMissing || storeMode !== 'embedded')('README tour (embedded)', () => {
  afterAll(async () => {
    await killAllChildren();
    removeTempDirs();
  });

  it('runs as written against a freshly started platform', async () => {
    const [port, receiverPort] = [await freePort(), await freePort()];
    const server = startCli(['serve'], {
      PLATFORM_DATA_DIR: makeTempDir('platform-tour-'),
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_OUTBOUND_ALLOW_LIST: '127.0.0.1',
      PLATFORM_LOG_LEVEL: 'warn',
    });
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, server, { timeoutMs: 90_000 });
    const [, password] = await server.waitForOutput(/password: (\S+)/, 5000);

    const script = tourBlocks(readme)
      .join('\n')
      .replaceAll('localhost:8080', `localhost:${port}`)
      .replaceAll('<printed password>', password!)
      .replaceAll('127.0.0.1:9000', `127.0.0.1:${receiverPort}`)
      .replaceAll('listen(9000,', `listen(${receiverPort},`);
    expect(script).not.toContain('9000');

    const home = makeTempDir('platform-tour-home-');
    const result = await runTour(script, home, {
      HOME: home,
      GIT_AUTHOR_NAME: 'Tour',
      GIT_AUTHOR_EMAIL: 'tour@example.com',
      GIT_COMMITTER_NAME: 'Tour',
      GIT_COMMITTER_EMAIL: 'tour@example.com',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
    });
    const report = `${result.timedOut ? `the tour did not finish within ${TOUR_DEADLINE_MS} ms` : `the tour failed (exit ${result.code})`}; last command:\n${result.lastCommand}\n--- tour output ---\n${result.output.slice(-6000)}\n--- server ---\n${server.describe()}`;
    expect(result.timedOut, report).toBe(false);
    expect(result.code, report).toBe(0);

    // What the reader is told to expect.
    expect(result.output).toContain('hello from main'); // the live step log
    expect(result.output).toMatch(/"status": "success"/); // the pipeline
    expect(result.output).toMatch(/"status": "merged"/);
    expect(result.output).toMatch(/"status": "closed"/);
    expect(result.output).toContain('received ping');
  }, 300_000);
});
