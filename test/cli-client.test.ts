/**
 * The CLI client (`platform login|projects|issues|mr|pipelines|…`), the real binary spawned against a
 * listening platform: what it prints is what the API returned (tables, and `--json` equal to the
 * API's answer), the stored login (0600, XDG_CONFIG_HOME), `-R` or the git remote picking the
 * project, `pipelines logs --follow` until the pipeline ends, and the documented exit codes.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandHelp } from '../src/cli/help.js';
import { isClientCommand, runClient } from '../src/client/index.js';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { logsBody } from './helpers/otlp.js';
import { childEnv, repoRoot } from './helpers/process.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The stand-in for Claude Code the agent tests use (it speaks its stream-json transcript). */
const fakeClaude = path.join(repoRoot, 'test/fixtures/fake-claude.mjs');
const tsx = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;

/** `platform <args>` as a user runs it: in `cwd`, with `env` (plus PATH/HOME), `input` on stdin. */
function cli(
  args: string[],
  o: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, path.join(repoRoot, 'src/main.ts'), ...args], {
      cwd: o.cwd ?? repoRoot,
      env: childEnv(o.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`platform ${args.join(' ')} did not finish\n${stdout}\n${stderr}`));
    }, 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.input ?? '');
  });
}

/**
 * The same commands in-process (the binary calls exactly this, then exits with the code): most cases
 * run here, since every spawned CLI pays for its own TypeScript start.
 */
async function client(
  args: string[],
  o: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<Run> {
  const [command, ...rest] = args;
  if (!command || !isClientCommand(command)) throw new Error(`not a client command: ${command}`);
  let stdout = '';
  let stderr = '';
  const code = await runClient(command, rest, {
    io: {
      out: (text) => {
        stdout += text;
      },
      err: (text) => {
        stderr += text;
      },
    },
    env: childEnv(o.env),
    cwd: o.cwd ?? repoRoot,
    stdin: Readable.from([o.input ?? '']),
  });
  return { code, stdout, stderr };
}

describe.skipIf(servicesMissing)('CLI client against a live platform', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string; password: string };
  let rob: { id: string; token: string };
  let reader: { id: string; token: string };
  const tmp = tempDir('platform-cli-client-');
  let config: string;
  let work: string;
  /** The environment of a user who ran `platform login` (set in the first test). */
  let loggedIn: Record<string, string>;
  const asUser = (token: string) => ({ PLATFORM_URL: t.baseUrl, PLATFORM_TOKEN: token });

  beforeAll(async () => {
    t = await createTestPlatform({
      listen: true,
      config: {
        PLATFORM_PIPELINE_CONCURRENCY: '2',
        PLATFORM_RUNNER_READONLY_PATHS: path.dirname(fakeClaude),
      },
    });
    const agents = await t.request('PATCH', '/api/agent-settings', {
      token: t.adminToken,
      body: { claude_command: fakeClaude },
    });
    expect(agents.status, agents.text).toBe(200);
    t.platform.startBackground();
    dev = await t.createUser('dana', ['developer']);
    rob = await t.createUser('rob', ['developer']);
    reader = await t.createUser('rita', []);
    config = path.join(tmp.dir, 'config');
    loggedIn = { XDG_CONFIG_HOME: config };
    const res = await t.request('POST', '/api/projects', {
      token: dev.token,
      body: { name: 'tool', visibility: 'internal' },
    });
    expect(res.status).toBe(201);
    work = path.join(tmp.dir, 'tool');
    await gitOk(['clone', authUrl(t.baseUrl, 'dana', dev.token, '/dana/tool.git'), work]);
    writeFileSync(
      path.join(work, '.platform.yaml'),
      `pipeline:
  on:
    push: false
  steps:
    - name: build
      commands: ["echo building $VERSION", "sleep 3", "echo build done"]
    - name: check
      depends_on: [build]
      commands: ["echo checking", "test \\"$FAIL\\" != yes"]
`,
    );
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'ci'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:main'], { cwd: work });
    await gitOk(['checkout', '-q', '-b', 'feature'], { cwd: work });
    writeFileSync(path.join(work, 'NOTES'), 'notes\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'notes'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'feature:feature'], { cwd: work });
    await t.platform.settle();
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('login stores a checked token owner-only under XDG_CONFIG_HOME; later commands use it', async () => {
    const noLogin = await cli(['projects', 'ls'], { env: loggedIn });
    expect(noLogin.code, noLogin.stderr).toBe(3);
    expect(noLogin.stderr).toContain('platform login');

    const bad = await client(['login', t.baseUrl, '--token', 'plat_api_nope'], { env: loggedIn });
    expect(bad.code, bad.stderr).toBe(3);

    const ok = await cli(['login', t.baseUrl, '--token', dev.token], { env: loggedIn });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('as dana');
    const file = path.join(config, 'platform', 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({
      url: t.baseUrl,
      token: dev.token,
      user: 'dana',
    });

    const list = await cli(['projects', 'ls'], { env: loggedIn });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^PROJECT\s+VISIBILITY/);
    expect(list.stdout).toMatch(/dana\/tool\s+internal\s+main/);
    const json = await client(['projects', 'ls', '--json'], { env: loggedIn });
    const api = await t.request('GET', '/api/projects', { token: dev.token });
    expect(JSON.parse(json.stdout)).toEqual(api.body);
  }, 240_000);

  it('login with a user name signs in with the password from stdin and stores a new token', async () => {
    const env = { XDG_CONFIG_HOME: path.join(tmp.dir, 'other-config') };
    const wrong = await client(['login', t.baseUrl, '--user', 'dana'], { env, input: 'not-the-password\n' });
    expect(wrong.code, wrong.stderr).toBe(3);
    const ok = await client(['login', t.baseUrl, '--user', 'dana'], { env, input: `${dev.password}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    const stored = JSON.parse(
      readFileSync(path.join(env.XDG_CONFIG_HOME, 'platform', 'credentials.json'), 'utf8'),
    );
    expect(stored.token).not.toBe(dev.token);
    const me = await t.request('GET', '/api/auth/me', { token: stored.token });
    expect(me.status).toBe(200);
    const tokens = await t.request('GET', '/api/tokens', { token: dev.token });
    expect(tokens.body.items.map((x: { name: string }) => x.name)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^cli@/)]),
    );
  });

  it('issues: create, list (table and --json), comment, close — with -R and from the git remote', async () => {
    const created = await client(
      ['issues', 'create', '-R', 'dana/tool', '--title', 'Crash on start', '--body', 'stack…', '--json'],
      {
        env: loggedIn,
      },
    );
    expect(created.code, created.stderr).toBe(0);
    const issue = JSON.parse(created.stdout);
    const api = await t.request('GET', `/api/projects/dana/tool/issues/${issue.number}`, {
      token: dev.token,
    });
    expect(issue).toEqual(api.body);

    // No -R: the project comes from the clone's origin remote.
    const table = await client(['issues', 'ls'], { env: loggedIn, cwd: work });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      new RegExp(`^#\\s+STATUS\\s+TITLE[^\\n]*\\n${issue.number}\\s+open\\s+Crash on start\\s+dana`),
    );

    const comment = await client(
      ['issues', 'comment', String(issue.number), '--body', 'looking', '-R', 'dana/tool'],
      { env: loggedIn },
    );
    expect(comment.code, comment.stderr).toBe(0);
    expect(comment.stdout).toContain(`commented on issue #${issue.number}`);
    const closed = await client(['issues', 'close', String(issue.number), '-R', 'dana/tool'], {
      env: loggedIn,
    });
    expect(closed.code, closed.stderr).toBe(0);
    const after = await t.request('GET', `/api/projects/dana/tool/issues/${issue.number}`, {
      token: dev.token,
    });
    expect(after.body.status).toBe('closed');
    const comments = await t.request('GET', `/api/projects/dana/tool/issues/${issue.number}/comments`, {
      token: dev.token,
    });
    expect(comments.body.items.map((c: { body: string }) => c.body)).toEqual(['looking']);
  });

  it('merge requests: create, ls, show with blockers, review by another user, merge; a second merge exits 6', async () => {
    const created = await client(
      [
        'mr',
        'create',
        '-R',
        'dana/tool',
        '--source',
        'feature',
        '--target',
        'main',
        '--title',
        'Add notes',
        '--json',
      ],
      { env: loggedIn },
    );
    expect(created.code, created.stderr).toBe(0);
    const mr = JSON.parse(created.stdout);
    const ls = await client(['mr', 'ls', '-R', 'dana/tool'], { env: loggedIn });
    expect(ls.stdout).toMatch(new RegExp(`${mr.number}\\s+open\\s+Add notes\\s+feature → main\\s+dana`));
    const review = await client(['mr', 'review', String(mr.number), '--approve', '-R', 'dana/tool'], {
      env: asUser(rob.token),
    });
    expect(review.code, review.stderr).toBe(0);
    const self = await client(['mr', 'review', String(mr.number), '--approve', '-R', 'dana/tool'], {
      env: loggedIn,
    });
    expect(self.code, self.stderr).toBe(4);
    expect(self.stderr).toContain('mr.self_review');
    const show = await client(['mr', 'show', String(mr.number), '-R', 'dana/tool'], { env: loggedIn });
    expect(show.stdout).toMatch(/mergeable:\s+true/);
    const detail = await client(['mr', 'show', String(mr.number), '-R', 'dana/tool', '--json'], {
      env: loggedIn,
    });
    const api = await t.request('GET', `/api/projects/dana/tool/merge-requests/${mr.number}`, {
      token: dev.token,
    });
    expect(JSON.parse(detail.stdout)).toEqual(api.body);
    const merged = await client(['mr', 'merge', String(mr.number), '-R', 'dana/tool'], { env: loggedIn });
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stdout).toContain(`merged !${mr.number}`);
    const again = await client(['mr', 'merge', String(mr.number), '-R', 'dana/tool'], { env: loggedIn });
    expect(again.code).toBe(6);
    expect(again.stderr).toContain('mr.not_open');
  });

  it('pipelines: run, then logs --follow prints the steps as they run until the pipeline ends (exit 0; 8 on failure)', async () => {
    const run = await client(
      ['pipelines', 'run', '-R', 'dana/tool', '--ref', 'main', '--var', 'VERSION=1.2.3', '--json'],
      {
        env: loggedIn,
      },
    );
    expect(run.code, run.stderr).toBe(0);
    const started = JSON.parse(run.stdout);
    expect(['pending', 'running']).toContain(started.status);
    const follow = await client(
      ['pipelines', 'logs', String(started.number), '--follow', '-R', 'dana/tool'],
      { env: loggedIn },
    );
    expect(follow.code, follow.stderr).toBe(0);
    expect(follow.stdout).toContain('==> build');
    expect(follow.stdout).toContain('building 1.2.3');
    expect(follow.stdout).toContain('build done');
    expect(follow.stdout).toContain('==> check');
    expect(follow.stdout.indexOf('build done')).toBeLessThan(follow.stdout.indexOf('checking'));
    expect(follow.stderr).toContain('[build] running');
    expect(follow.stderr).toContain(`pipeline #${started.number} success`);
    // It ended because the pipeline did.
    const api = await t.request('GET', `/api/projects/dana/tool/pipelines/${started.number}`, {
      token: dev.token,
    });
    expect(api.body.status).toBe('success');

    const show = await client(['pipelines', 'show', String(started.number), '-R', 'dana/tool'], {
      env: loggedIn,
    });
    expect(show.stdout).toMatch(/status:\s+success/);
    expect(show.stdout).toMatch(/build\s+success\s+0/);
    const ls = await client(['pipelines', 'ls', '-R', 'dana/tool', '--json'], { env: loggedIn });
    const list = await t.request('GET', '/api/projects/dana/tool/pipelines', { token: dev.token });
    expect(JSON.parse(ls.stdout)).toEqual(list.body);

    const failing = await client(
      ['pipelines', 'run', '-R', 'dana/tool', '--ref', 'main', '--var', 'FAIL=yes', '--follow'],
      {
        env: loggedIn,
      },
    );
    expect(failing.code, failing.stderr).toBe(8);
    expect(failing.stdout).toContain('checking');
    expect(failing.stderr).toMatch(/pipeline #\d+ failure/);
  }, 120_000);

  it('logs: the newest entries of a project as a table, and --tail prints entries as they are ingested', async () => {
    const project = await t.request('GET', '/api/projects/dana/tool', { token: dev.token });
    const ingest = async (message: string) => {
      const res = await t.request('POST', '/v1/logs', {
        token: t.adminToken,
        body: logsBody([{ message, service: 'api', projectId: project.body.id, severity: 13 }]),
        noAuditCheck: true,
      });
      expect(res.status, res.text).toBe(200);
    };
    await ingest('disk almost full');
    const search = await eventually(async () => {
      const r = await client(['logs', '--project', 'dana/tool'], { env: loggedIn });
      return r.stdout.includes('disk almost full') ? r : undefined;
    }, 20_000);
    expect(search!.stdout).toMatch(/^TIME\s+LEVEL\s+SERVICE\s+MESSAGE\n\S+\s+warn\s+api\s+disk almost full/);

    let stderr = '';
    let stdout = '';
    const tailing = runClient('logs', ['--tail', '--project', 'dana/tool', '--max', '1'], {
      io: {
        out: (text) => {
          stdout += text;
        },
        err: (text) => {
          stderr += text;
        },
      },
      env: childEnv(loggedIn),
    });
    await eventually(() => stderr.includes('tailing logs of dana/tool'), 20_000, 'the tail to start');
    await ingest('cache warmed');
    expect(await tailing).toBe(0);
    expect(stdout).toMatch(/WARN\s+api: cache warmed\n$/);
    expect(stdout).not.toContain('disk almost full');
  });

  it('deploy: status of the environments (table, --json, one environment) and a refused rollback (exit 6)', async () => {
    const created = await t.request('PATCH', '/api/projects/dana/tool/deployments/staging', {
      token: t.adminToken,
      body: { image_ref: 'registry.example/tool:1.0' },
    });
    expect(created.status, created.text).toBe(200);
    const status = await client(['deploy', 'status', '-R', 'dana/tool'], { env: loggedIn });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^ENVIRONMENT\s+DESIRED\s+CURRENT\s+VERSION/);
    expect(status.stdout).toMatch(/staging\s+active\s+\S+\s+registry\.example\/tool:1\.0/);
    const json = await client(['deploy', 'status', '-R', 'dana/tool', '--json'], { env: loggedIn });
    const api = await t.request('GET', '/api/projects/dana/tool/deployments', { token: dev.token });
    expect(JSON.parse(json.stdout).items.map((d: { environment: string }) => d.environment)).toEqual(
      api.body.items.map((d: { environment: string }) => d.environment),
    );
    const one = await client(['deploy', 'status', '-R', 'dana/tool', '--environment', 'staging'], {
      env: loggedIn,
    });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/environment:\s+staging/);
    // Nothing earlier to go back to: the API's refusal, with its reason, and exit 6.
    const rollback = await client(['deploy', 'rollback', '-R', 'dana/tool', '--environment', 'staging'], {
      env: loggedIn,
    });
    expect(rollback.code, rollback.stderr).toBe(6);
    expect(rollback.stderr).toMatch(/deploy\.\w+/);
  });

  it('sessions: start "<prompt>" --follow prints the agent\'s messages until the session ends; ls and show', async () => {
    const crashed = await client(
      ['sessions', 'start', '[scenario:crash] look around', '-R', 'dana/tool', '--follow'],
      {
        env: loggedIn,
      },
    );
    expect(crashed.code, crashed.stderr).toBe(8);
    const id = /started session ([0-9a-f-]{36})/.exec(crashed.stderr)?.[1];
    expect(id, crashed.stderr).toBeDefined();
    expect(crashed.stderr).toMatch(/status:\s+failed/);
    const api = await t.request('GET', `/api/projects/dana/tool/sessions/${id}?limit=1000`, {
      token: dev.token,
    });
    expect(api.body.status).toBe('failed');
    // Every stored message was printed, in order.
    const printed = crashed.stdout.split('\n').filter(Boolean);
    expect(printed).toHaveLength(api.body.messages.length);
    expect(api.body.messages.length).toBeGreaterThan(0);
    const ls = await client(['sessions', 'ls', '-R', 'dana/tool', '--json'], { env: loggedIn });
    const list = await t.request('GET', '/api/projects/dana/tool/sessions', { token: dev.token });
    expect(JSON.parse(ls.stdout)).toEqual(list.body);
    const shown = await client(['sessions', 'show', id!, '-R', 'dana/tool'], { env: loggedIn });
    expect(shown.stdout).toMatch(new RegExp(`session:\\s+${id}`));
  }, 120_000);

  it('exit codes (docs/cli.md): usage 2, forbidden 4, not found 5, unreachable 7; --help for each command', async () => {
    const usage = await client(['issues', 'frobnicate', '-R', 'dana/tool'], { env: loggedIn });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('unknown issues command');
    const unknownOption = await client(['issues', 'ls', '--colour', 'red', '-R', 'dana/tool'], {
      env: loggedIn,
    });
    expect(unknownOption.code).toBe(2);
    const forbidden = await client(['issues', 'create', '-R', 'dana/tool', '--title', 'x'], {
      env: asUser(reader.token),
    });
    expect(forbidden.code, forbidden.stderr).toBe(4);
    expect(forbidden.stderr).toContain('project:write');
    const missing = await client(['issues', 'ls', '-R', 'dana/nothing'], { env: loggedIn });
    expect(missing.code).toBe(5);
    const unreachable = await client(['projects', 'ls', '--url', 'http://127.0.0.1:9'], {
      env: { PLATFORM_TOKEN: dev.token },
    });
    expect(unreachable.code).toBe(7);
    // --help of every client command (main prints commandHelp before dispatching), one through the binary.
    for (const command of [
      'login',
      'mcp',
      'projects',
      'issues',
      'mr',
      'pipelines',
      'deploy',
      'logs',
      'sessions',
    ] as const)
      expect(commandHelp(command)).toContain(`platform ${command}`);
    const help = await cli(['mr', 'review', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('platform mr review <number> --approve|--request-changes|--comment');
  }, 120_000);
});
