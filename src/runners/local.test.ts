import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitOk, tempDir } from '../../test/helpers/git.js';
import { eventually } from '../../test/helpers/wait.js';
import {
  createProcessLauncher,
  LAUNCHER_DIED,
  LauncherDiedError,
  type ProcessLauncher,
} from '../core/launcher.js';
import { createLocalRunner, type LocalRunner, type LocalRunnerOptions } from './local.js';
import type { RepoSource, StepRunRequest, StepRunResult, Workspace } from './types.js';
import { prepareLocalWorkspace } from './workspace.js';

const BWRAP = '/usr/bin/bwrap';
const localModule = fileURLToPath(new URL('./local.ts', import.meta.url));
const asRoot = process.getuid?.() === 0;

let tmp: ReturnType<typeof tempDir>;
let workRoot: string;
let source: RepoSource;
/** A root-owned file outside everything: the checkout holds a symlink to it. */
let victim: string;
const children: ChildProcess[] = [];
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  tmp = tempDir('platform-runner-local-');
  // mkdtemp makes 0700: the sandbox user must be able to pass through to the workspaces.
  chmodSync(tmp.dir, 0o711);
  workRoot = path.join(tmp.dir, 'work');
  const bare = path.join(tmp.dir, 'repo.git');
  const seed = path.join(tmp.dir, 'seed');
  victim = path.join(tmp.dir, 'victim.txt');
  writeFileSync(victim, 'root-owned\n', { mode: 0o600 });
  await gitOk(['init', '--bare', bare]);
  await gitOk(['init', seed]);
  writeFileSync(path.join(seed, 'hello.txt'), 'hello from the repo\n');
  symlinkSync(victim, path.join(seed, 'link-to-victim'));
  await gitOk(['add', 'hello.txt', 'link-to-victim'], { cwd: seed });
  await gitOk(['commit', '-m', 'first'], { cwd: seed });
  const first = (await gitOk(['rev-parse', 'HEAD'], { cwd: seed })).trim();
  writeFileSync(path.join(seed, 'hello.txt'), 'hello again\n');
  await gitOk(['commit', '-am', 'second'], { cwd: seed });
  await gitOk(['push', bare, 'main'], { cwd: seed });
  source = { repoDir: bare, cloneUrl: 'http://unused.invalid/repo.git', sha: first };
});

afterAll(() => {
  for (const child of children) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
  for (const cleanup of cleanups) cleanup();
  tmp.cleanup();
});

/** A distinct host uid per runner: the host processes of its steps are exactly those of that uid. */
let nextUid = 61_000 + (process.pid % 500) * 8;
function runnerWith(options: Partial<LocalRunnerOptions> = {}): { runner: LocalRunner; uid: number } {
  const uid = nextUid++;
  const runner = createLocalRunner({ workRoot, sandboxUser: { uid, gid: uid }, ...options });
  return { runner, uid };
}

interface HostProcess {
  pid: number;
  uid: number;
  pgrp: number;
  ppid: number;
  comm: string;
}

function hostProcesses(): HostProcess[] {
  const list: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      // Zombies are dead already (their parent has not reaped them yet).
      if (fields[0] === 'Z') continue;
      list.push({ pid: Number(entry), uid, pgrp: Number(fields[2]), ppid: Number(fields[1]), comm });
    } catch {
      // exited while listing
    }
  }
  return list;
}

const sleepsOf = (uid: number) => hostProcesses().filter((p) => p.uid === uid && p.comm === 'sleep');
/** Killed processes take a moment to be reaped: waits until none of the step's sleeps is left. */
const noSleepsOf = (uid: number) =>
  eventually(async () => sleepsOf(uid).length === 0, 5_000, `no sleep of uid ${uid}`);

interface Ran {
  result: StepRunResult;
  output: string;
}

function stepRequest(
  workspace: Workspace,
  pipelineId: string,
  stepName: string,
  commands: string[],
  extra: Partial<StepRunRequest> & { output?: Buffer[] } = {},
): StepRunRequest {
  const output = extra.output ?? [];
  return {
    runId: `${pipelineId}:${stepName}`,
    pipelineId,
    stepName,
    image: null,
    commands,
    env: { CI: 'true' },
    timeoutSeconds: 60,
    workspace,
    source,
    signal: new AbortController().signal,
    onOutput: (chunk) => output.push(chunk),
    ...extra,
  };
}

async function run(runner: LocalRunner, req: StepRunRequest): Promise<Ran> {
  const chunks: Buffer[] = [];
  const inner = req.onOutput;
  const result = await runner.runStep({
    ...req,
    onOutput: (chunk) => {
      chunks.push(chunk);
      inner(chunk);
    },
  });
  return { result, output: Buffer.concat(chunks).toString('utf8') };
}

async function workspaceFor(runner: LocalRunner): Promise<{ pipelineId: string; workspace: Workspace }> {
  const pipelineId = randomUUID();
  return { pipelineId, workspace: await runner.prepareWorkspace(pipelineId, source) };
}

async function outputContains(chunks: Buffer[], text: string): Promise<void> {
  await eventually(async () => Buffer.concat(chunks).toString().includes(text), 10_000, `output "${text}"`);
}

const SANDBOXED = /^\[runner\] local, sandboxed: bubblewrap as /;

describe('local runner: workspace', () => {
  it('clones the repository and checks out the commit detached, owned by the sandbox user', async () => {
    const { runner, uid } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    expect(workspace.dir).toBe(path.join(workRoot, pipelineId, 'src'));
    expect(readFileSync(path.join(workspace.dir, 'hello.txt'), 'utf8')).toBe('hello from the repo\n');
    // The checkout belongs to the sandbox user: git run as root here must be told it is safe.
    const safe = ['-c', 'safe.directory=*'];
    expect((await gitOk([...safe, 'rev-parse', 'HEAD'], { cwd: workspace.dir })).trim()).toBe(source.sha);
    const head = await gitOk([...safe, 'symbolic-ref', '-q', 'HEAD'], { cwd: workspace.dir }).catch(
      () => 'detached',
    );
    expect(head).toBe('detached');
    if (asRoot) {
      expect(statSync(path.join(workspace.dir, 'hello.txt')).uid).toBe(uid);
      expect(statSync(path.join(workspace.dir, '.git', 'HEAD')).uid).toBe(uid);
      // The symlink itself changed hands, never what it points at.
      expect(lstatSync(path.join(workspace.dir, 'link-to-victim')).uid).toBe(uid);
      expect(statSync(victim).uid).toBe(0);
      // The root (pid files) stays the platform's; the sandbox user may only pass through.
      expect(statSync(path.join(workRoot, pipelineId)).uid).toBe(0);
      expect(statSync(path.join(workRoot, pipelineId)).mode & 0o777).toBe(0o711);
    }

    await workspace.dispose();
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    await workspace.dispose();
  });

  it('fails clearly when the commit is not in the repository, leaving nothing behind', async () => {
    const { runner } = runnerWith();
    const pipelineId = randomUUID();
    const missing = 'deadbeef'.repeat(5);
    await expect(runner.prepareWorkspace(pipelineId, { ...source, sha: missing })).rejects.toThrow(
      `commit ${missing} not found in ${source.repoDir}`,
    );
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('refuses a sha that git could read as an option and a pipeline id that is not a plain name', async () => {
    const { runner } = runnerWith();
    await expect(
      runner.prepareWorkspace(randomUUID(), { ...source, sha: '--upload-pack=x' }),
    ).rejects.toThrow('invalid commit sha');
    await expect(runner.prepareWorkspace('../escape', source)).rejects.toThrow('cannot name a workspace');
  });

  it.runIf(asRoot)(
    'moves workspaces to a root-owned directory the sandbox user can reach when the configured one is not',
    async () => {
      const closed = mkdtempSync(path.join(tmp.dir, 'closed-')); // 0700
      const { runner } = runnerWith({ workRoot: path.join(closed, 'work') });
      expect(runner.workRoot.startsWith('/var/tmp/platform-runs-')).toBe(true);
      cleanups.push(() => rmSync(runner.workRoot, { recursive: true, force: true }));
      const info = statSync(runner.workRoot);
      expect(info.uid).toBe(0);
      expect(info.mode & 0o777).toBe(0o711);
      const { pipelineId, workspace } = await workspaceFor(runner);
      const { result, output } = await run(
        runner,
        stepRequest(workspace, pipelineId, 'x', ['cat hello.txt']),
      );
      expect(result.outcome).toBe('success');
      expect(output).toContain('hello from the repo\n');
      await workspace.dispose();

      // A directory of that name planted by someone else is refused, not used.
      const planted = mkdtempSync(path.join(tmp.dir, 'planted-'));
      const target = createLocalRunner({
        workRoot: path.join(planted, 'w'),
        sandboxUser: { uid: 1, gid: 1 },
      });
      rmSync(target.workRoot, { recursive: true, force: true });
      mkdirSync(target.workRoot, { mode: 0o777 });
      chmodSync(target.workRoot, 0o777);
      expect(() =>
        createLocalRunner({ workRoot: path.join(planted, 'w'), sandboxUser: { uid: 1, gid: 1 } }),
      ).toThrow('is not a directory owned by root and writable only by it');
      rmSync(target.workRoot, { recursive: true, force: true });
    },
  );
});

describe('local runner: steps', () => {
  it('asserts that bubblewrap is installed (the isolation tests below rely on it)', () => {
    expect(existsSync(BWRAP)).toBe(true);
  });

  it('runs the commands in the checkout, echoes each one and captures stdout and stderr in order', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'build', ['echo out-1', 'echo err-1 >&2', 'cat hello.txt', 'pwd'], {
        image: 'node:20',
      }),
    );
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(result.error).toBeUndefined();
    const [header, ...rest] = output.split('\n');
    expect(output).toMatch(SANDBOXED);
    expect(header).toContain('; image node:20 noted but not used');
    expect(rest.join('\n')).toBe(
      '$ echo out-1\nout-1\n' +
        '$ echo err-1 >&2\nerr-1\n' +
        '$ cat hello.txt\nhello from the repo\n' +
        `$ pwd\n${workspace.dir}\n`,
    );
    await workspace.dispose();
  });

  it('shows an extra read-only path even under /tmp (the private /tmp is mounted first), not writable', async () => {
    const extra = mkdtempSync(path.join(tmpdir(), 'platform-ro-'));
    cleanups.push(() => rmSync(extra, { recursive: true, force: true }));
    writeFileSync(path.join(extra, 'tool.txt'), 'a toolchain file\n');
    chmodSync(extra, 0o755);
    const { runner } = runnerWith({ readOnlyPaths: [extra] });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const file = path.join(extra, 'tool.txt');
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'ro', [
        `cat ${file}`,
        `touch ${file} 2>/dev/null || echo read-only`,
      ]),
    );
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(output).toContain('a toolchain file\n');
    expect(output).toContain('\nread-only\n');
    await workspace.dispose();
  });

  it('stops at the first failing command (set -e) and reports its exit code', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'test', ['echo one', 'sh -c "exit 7"', 'echo three']),
    );
    expect(result).toMatchObject({ outcome: 'failure', exitCode: 7 });
    expect(output).toContain('$ echo one\none\n$ sh -c "exit 7"\n');
    expect(output).not.toContain('three');
    await workspace.dispose();
  });

  it('keeps shell state across commands and quotes commands with quotes in the echo', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'state', [
        'export GREETING="it\'s me"',
        'mkdir sub && cd sub',
        'echo "$GREETING in $(basename "$PWD")"',
      ]),
    );
    expect(result.outcome).toBe('success');
    expect(output).toContain(`$ export GREETING="it's me"\n`);
    expect(output).toContain("it's me in sub\n");
    await workspace.dispose();
  });

  it('gives the step exactly the injected environment plus PATH, HOME and LANG', async () => {
    process.env.PLATFORM_RUNNER_LEAK_TEST = 'leaked-value';
    try {
      const { runner } = runnerWith();
      const { pipelineId, workspace } = await workspaceFor(runner);
      const { result, output } = await run(
        runner,
        stepRequest(workspace, pipelineId, 'env', ['env'], { env: { CI: 'true', INJECTED: 'a b=c' } }),
      );
      expect(result.outcome).toBe('success');
      expect(output).not.toContain('leaked-value');
      const vars = new Map(
        output
          .split('\n')
          .filter((line) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(line))
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      // PWD, SHLVL and OLDPWD are the shell's own.
      for (const own of ['PWD', 'SHLVL', 'OLDPWD', '_']) vars.delete(own);
      expect([...vars.keys()].sort()).toEqual(['CI', 'HOME', 'INJECTED', 'LANG', 'PATH']);
      expect(vars.get('INJECTED')).toBe('a b=c');
      expect(vars.get('PATH')).toBe('/usr/local/bin:/usr/bin:/bin');
      expect(vars.get('LANG')).toBe('C.UTF-8');
      const home = vars.get('HOME')!;
      expect(home.startsWith(path.join(workRoot, pipelineId, 'home') + path.sep)).toBe(true);
      expect(home.startsWith(workspace.dir)).toBe(false);
      await workspace.dispose();
    } finally {
      delete process.env.PLATFORM_RUNNER_LEAK_TEST;
    }
  });

  it('uses the PATH the step was given', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'path', ['echo "path=$PATH"'], {
        env: { PATH: '/bin:/usr/bin:/opt/tools' },
      }),
    );
    expect(output).toContain('path=/bin:/usr/bin:/opt/tools\n');
    await workspace.dispose();
  });

  it.runIf(asRoot)(
    'kills the whole process group on timeout, background children and grandchildren included',
    async () => {
      const { runner, uid } = runnerWith();
      const { pipelineId, workspace } = await workspaceFor(runner);
      const output: Buffer[] = [];
      const done = runner.runStep(
        stepRequest(
          workspace,
          pipelineId,
          'slow',
          ['sleep 300 &', "sh -c 'sleep 301 & echo grandchild started; wait'"],
          { timeoutSeconds: 2, output },
        ),
      );
      await outputContains(output, 'grandchild started');
      await eventually(async () => sleepsOf(uid).length === 2, 5_000, 'both sleeps running');

      const result = await done;
      expect(result).toMatchObject({ outcome: 'timeout', exitCode: null, error: 'timed out after 2s' });
      await noSleepsOf(uid);
      await workspace.dispose();
      await eventually(async () => hostProcesses().every((p) => p.uid !== uid), 5_000, 'sandbox gone');
    },
  );

  it.runIf(asRoot)('follows SIGTERM with SIGKILL when the step ignores SIGTERM', async () => {
    const { runner, uid } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const output: Buffer[] = [];
    const done = runner.runStep(
      // An ignored signal stays ignored across exec: sh and sleep both ignore SIGTERM.
      stepRequest(workspace, pipelineId, 'stubborn', ["trap '' TERM", 'echo trapped', 'sleep 300'], {
        timeoutSeconds: 1,
        output,
      }),
    );
    await outputContains(output, 'trapped');
    expect(await done).toMatchObject({ outcome: 'timeout', error: 'timed out after 1s' });
    await noSleepsOf(uid);
    await workspace.dispose();
  });

  it.runIf(asRoot)(
    'kills what a step left running when it ends, also processes that left its group (setsid)',
    async () => {
      const { runner, uid } = runnerWith();
      const { pipelineId, workspace } = await workspaceFor(runner);
      const { result } = await run(
        runner,
        stepRequest(workspace, pipelineId, 'bg', [
          'sleep 300 > /dev/null 2>&1 &',
          'setsid sleep 301 > /dev/null 2>&1 < /dev/null &',
          'while [ "$(ls /proc | grep -c "^[0-9]")" -lt 4 ]; do sleep 0.05; done',
        ]),
      );
      expect(result.outcome).toBe('success');
      await noSleepsOf(uid);
      const next = await run(
        runner,
        stepRequest(workspace, pipelineId, 'next', ['ps -eo comm= 2>/dev/null || ls /proc']),
      );
      expect(next.result.outcome).toBe('success');
      expect(next.output).not.toContain('sleep');
      await workspace.dispose();
    },
  );

  it('cancels a running step within seconds when the signal aborts', async () => {
    const { runner, uid } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const controller = new AbortController();
    const output: Buffer[] = [];
    const done = runner.runStep(
      stepRequest(workspace, pipelineId, 'cancel-me', ['echo started', 'sleep 300 & sleep 300'], {
        signal: controller.signal,
        output,
      }),
    );
    await outputContains(output, 'started');
    const abortedAt = Date.now();
    controller.abort();
    const result = await done;
    expect(result.outcome).toBe('cancelled');
    expect(result.exitCode).toBeNull();
    expect(Date.now() - abortedAt).toBeLessThan(5_000);
    if (asRoot) await noSleepsOf(uid);
    await workspace.dispose();
  });

  it('does not start a step whose signal is already aborted', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const controller = new AbortController();
    controller.abort();
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'never', ['touch ran'], { signal: controller.signal }),
    );
    expect(result.outcome).toBe('cancelled');
    expect(output).toBe('');
    expect(existsSync(path.join(workspace.dir, 'ran'))).toBe(false);
    await workspace.dispose();
  });

  it('runs two steps of one pipeline at the same time, in one sandbox', async () => {
    const { runner, uid } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    // Each step waits for the other's marker: both can only finish if they really overlap.
    const waitFor = (mine: string, theirs: string) => [
      `touch /tmp/${mine}`,
      `i=0; while [ ! -e /tmp/${theirs} ]; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done`,
    ];
    const [a, b] = await Promise.all([
      run(runner, stepRequest(workspace, pipelineId, 'a', waitFor('a.ready', 'b.ready'))),
      run(runner, stepRequest(workspace, pipelineId, 'b', waitFor('b.ready', 'a.ready'))),
    ]);
    expect(a.result.outcome).toBe('success');
    expect(b.result.outcome).toBe('success');
    // Their markers were in the run's private /tmp, shared by its steps.
    const c = await run(runner, stepRequest(workspace, pipelineId, 'c', ['ls /tmp']));
    expect(c.output).toContain('a.ready\nb.ready\n');
    expect(existsSync('/tmp/a.ready')).toBe(false);
    if (asRoot) {
      // One sandbox for the three steps: bubblewrap's two processes and one supervisor.
      const mine = hostProcesses().filter((p) => p.uid === uid);
      expect(mine.filter((p) => p.comm === 'bwrap')).toHaveLength(2);
      expect(mine.filter((p) => p.comm !== 'bwrap').map((p) => p.comm)).toEqual(['perl']);
    }
    // Another run does not see them.
    const other = await workspaceFor(runner);
    const d = await run(runner, stepRequest(other.workspace, other.pipelineId, 'd', ['ls -A /tmp']));
    expect(d.result.outcome).toBe('success');
    expect(d.output).not.toContain('.ready');
    await workspace.dispose();
    await other.workspace.dispose();
    if (asRoot)
      await eventually(async () => hostProcesses().every((p) => p.uid !== uid), 5_000, 'sandboxes gone');
  });

  it('fails without side effects when the workspace has been disposed', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    await workspace.dispose();
    const { result } = await run(runner, stepRequest(workspace, pipelineId, 'late', ['true']));
    expect(result).toMatchObject({ outcome: 'failure', exitCode: null });
    expect(result.error).toBe(`workspace directory ${workspace.dir} does not exist`);
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('reports a command that does not exist as a failure with the shell exit code', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'nope', ['no-such-command-xyz']),
    );
    expect(result).toMatchObject({ outcome: 'failure', exitCode: 127 });
    expect(output).toContain('no-such-command-xyz');
    await workspace.dispose();
  });
});

describe('local runner: the two supervisors behave alike', () => {
  for (const supervisor of ['perl', 'node'] as const) {
    it(`${supervisor}: output, exit codes, stop, parallel steps and leftovers`, async () => {
      const { runner, uid } = runnerWith({ supervisor });
      const { pipelineId, workspace } = await workspaceFor(runner);
      const ok = await run(
        runner,
        stepRequest(workspace, pipelineId, 'ok', ['printf "a\\0b\\n"', 'echo "home=$HOME"', 'echo err >&2'], {
          env: { CI: 'true', 'WITH=EQUALS': 'x', MULTI: 'line1\nline2' },
        }),
      );
      expect(ok.result).toMatchObject({ outcome: 'success', exitCode: 0 });
      expect(ok.output).toContain('a\0b\n');
      expect(ok.output).toMatch(new RegExp(`home=${path.join(workRoot, pipelineId, 'home')}/ok-\\w{6}\n`));
      expect(ok.output).toContain('err\n');
      const failed = await run(runner, stepRequest(workspace, pipelineId, 'f', ['exit 5']));
      expect(failed.result).toMatchObject({ outcome: 'failure', exitCode: 5 });
      const killed = await run(runner, stepRequest(workspace, pipelineId, 'k', ['kill -9 $$']));
      expect(killed.result).toMatchObject({ outcome: 'failure', exitCode: null, error: 'killed by SIGKILL' });
      const [a, b] = await Promise.all([
        run(
          runner,
          stepRequest(workspace, pipelineId, 'a', [
            'touch /tmp/a',
            'while [ ! -e /tmp/b ]; do sleep 0.02; done',
          ]),
        ),
        run(
          runner,
          stepRequest(workspace, pipelineId, 'b', [
            'touch /tmp/b',
            'while [ ! -e /tmp/a ]; do sleep 0.02; done',
          ]),
        ),
      ]);
      expect([a.result.outcome, b.result.outcome]).toEqual(['success', 'success']);
      const slow = await run(
        runner,
        stepRequest(
          workspace,
          pipelineId,
          'slow',
          ['setsid sleep 310 >/dev/null 2>&1 </dev/null &', 'sleep 300'],
          {
            timeoutSeconds: 1,
          },
        ),
      );
      expect(slow.result.outcome).toBe('timeout');
      if (asRoot) await noSleepsOf(uid);
      const big = await run(
        runner,
        stepRequest(workspace, pipelineId, 'big', ['head -c 3000000 /dev/zero | tr "\\0" x']),
      );
      expect(big.result.outcome).toBe('success');
      expect(big.output.endsWith(`\n${'x'.repeat(3_000_000)}`)).toBe(true);
      await workspace.dispose();
    });
  }
});

describe('local runner: network', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((socket) => socket.end('hello from the host\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const connect = () =>
    `node -e "require('net').connect(${port},'127.0.0.1').on('data',d=>{process.stdout.write(d);process.exit(0)}).on('error',e=>{console.log('refused:',e.code);process.exit(3)})"`;

  it('gives a step the host network by default and only loopback with network: none', async () => {
    const { runner } = runnerWith();
    const { pipelineId, workspace } = await workspaceFor(runner);
    const host = await run(runner, stepRequest(workspace, pipelineId, 'host', [connect()]));
    expect(host.result.outcome).toBe('success');
    expect(host.output).toContain('hello from the host\n');

    const none = await run(
      runner,
      stepRequest(
        workspace,
        pipelineId,
        'none',
        [`${connect()} || echo "exit $?"`, 'echo ---', 'cat /proc/net/dev'],
        {
          network: 'none',
        },
      ),
    );
    expect(none.result.outcome).toBe('success');
    expect(none.output.split('\n')[0]).toContain(', no network');
    expect(none.output).toContain('refused: ECONNREFUSED');
    expect(none.output).toContain('exit 3');
    expect(none.output).not.toContain('hello from the host');
    const interfaces = none.output
      .slice(none.output.lastIndexOf('---\n'))
      .split('\n')
      .filter((l) => /^\s*[a-z0-9]+:/.test(l))
      .map((l) => l.trim().split(':')[0]);
    expect(interfaces).toEqual(['lo']);
    // It shares the checkout with the run's other steps.
    const marker = await run(
      runner,
      stepRequest(workspace, pipelineId, 'none-writes', ['echo offline > offline.txt'], { network: 'none' }),
    );
    expect(marker.result.outcome).toBe('success');
    expect(readFileSync(path.join(workspace.dir, 'offline.txt'), 'utf8')).toBe('offline\n');
    await workspace.dispose();
  });
});

describe('local runner: the sandbox holds no privilege (escape attempts, as root)', () => {
  it.runIf(asRoot)(
    'every escape fails, nothing outside the workspace changes, no secret is read',
    async () => {
      const dataDir = path.join(tmp.dir, 'data');
      const repos = path.join(dataDir, 'repos', 'alice', 'private.git');
      mkdirSync(repos, { recursive: true });
      writeFileSync(path.join(dataDir, 'master.key'), 'master-key-content-4f1d\n', { mode: 0o600 });
      writeFileSync(path.join(repos, 'config'), 'private-repo-content-9a7c\n');
      const marker = `/platform-escape-${randomUUID()}`;
      const dataMarker = path.join(dataDir, 'pwned');
      process.env.PLATFORM_ADMIN_PASSWORD_LEAK_TEST = 'admin-password-77e2';
      const { runner, uid } = runnerWith({ hidePaths: [dataDir] });
      const { pipelineId, workspace } = await workspaceFor(runner);
      const attempt = (name: string, command: string) =>
        `if ( ${command} ) >/dev/null 2>&1; then echo "ESCAPED ${name}"; else echo "BLOCKED ${name}"; fi`;
      const attempts: Array<[string, string]> = [
        ['umount-tmp', 'umount -l /tmp'],
        ['umount-proc', 'umount -l /proc'],
        ['remount-root', 'mount -o remount,rw /'],
        ['remount-bind', 'mount -o remount,bind,rw /'],
        ['unshare', 'unshare -r true'],
        ['unshare-mount', 'unshare -m true'],
        ['host-init-environ', 'cat /proc/1/environ | grep -q PLATFORM_ADMIN'],
        ['platform-environ', `cat /proc/${process.pid}/environ`],
        ['signal-platform', `kill -0 ${process.pid}`],
        ['master-key', `cat ${dataDir}/master.key`],
        ['other-repo', `cat ${repos}/config`],
        ['marker-root', `touch ${marker}`],
        ['marker-data', `touch ${dataMarker}`],
        ['marker-etc', 'touch /etc/platform-escape'],
        ['chroot', 'chroot / true'],
        ['setuid-root', 'su -c true root < /dev/null'],
      ];
      const { result, output } = await run(
        runner,
        stepRequest(workspace, pipelineId, 'attacker', [
          ...attempts.map(([name, command]) => attempt(name, command)),
          'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs)" /proc/self/status',
          'echo "uid=$(id -u)"',
          'echo hello > owned.txt',
          'echo "processes: $(ls /proc | grep -c "^[0-9]")"',
        ]),
      );
      delete process.env.PLATFORM_ADMIN_PASSWORD_LEAK_TEST;
      expect(result.outcome).toBe('success');
      for (const [name] of attempts) expect(output).toContain(`BLOCKED ${name}\n`);
      expect(output.split('\n').filter((l) => l.startsWith('ESCAPED'))).toEqual([]);
      expect(output).toMatch(/CapEff:\s+0000000000000000/);
      expect(output).toMatch(/CapPrm:\s+0000000000000000/);
      expect(output).toMatch(/CapBnd:\s+0000000000000000/);
      expect(output).toMatch(/NoNewPrivs:\s+1/);
      for (const secret of ['master-key-content-4f1d', 'private-repo-content-9a7c', 'admin-password-77e2']) {
        expect(output).not.toContain(secret);
      }
      for (const file of [marker, dataMarker, '/etc/platform-escape']) expect(existsSync(file)).toBe(false);
      // On the host, the step ran as the unprivileged sandbox user, never as uid 0.
      expect(statSync(path.join(workspace.dir, 'owned.txt')).uid).toBe(uid);
      expect(Number(/processes: (\d+)/.exec(output)?.[1])).toBeLessThan(10);
      await workspace.dispose();
    },
  );

  it.runIf(asRoot)(
    'hides the data directory and other runs even below the read-only system trees',
    async () => {
      // A data directory under /opt (shown read-only) is still not readable: hidden under an empty tmpfs.
      const dataDir = mkdtempSync('/opt/platform-runner-data-');
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      writeFileSync(path.join(dataDir, 'master.key'), 'opt-key-content-1b2c\n');
      const { runner } = runnerWith({ hidePaths: [dataDir] });
      const one = await workspaceFor(runner);
      const other = await workspaceFor(runner);
      const { result, output } = await run(
        runner,
        stepRequest(one.workspace, one.pipelineId, 'snoop', [
          `ls ${other.workspace.dir} || echo "no other workspace"`,
          `cat ${dataDir}/master.key || echo "no key"`,
        ]),
      );
      expect(result.outcome).toBe('success');
      expect(output).toContain('no other workspace');
      expect(output).toContain('no key');
      expect(output).not.toContain('opt-key-content-1b2c');
      await one.workspace.dispose();
      await other.workspace.dispose();
    },
  );
});

describe('local runner: without bubblewrap', () => {
  it('refuses to run steps unsandboxed when the platform runs as root', async () => {
    const { runner } = runnerWith({ bwrap: 'never', runsAsRoot: true });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(runner, stepRequest(workspace, pipelineId, 'x', ['touch ran']));
    expect(result.outcome).toBe('failure');
    expect(result.error).toContain('steps are never run unsandboxed as root');
    expect(result.error).toContain('apt-get install bubblewrap');
    expect(output).toBe('');
    expect(existsSync(path.join(workspace.dir, 'ran'))).toBe(false);
    expect(await runner.isolation()).toMatchObject({ mode: 'refused' });
    await workspace.dispose();
  });

  it('refuses as root when bubblewrap is not installed, in auto mode too', async () => {
    const saved = process.env.PATH;
    process.env.PATH = path.join(tmp.dir, 'empty-path');
    let runner: LocalRunner;
    try {
      runner = createLocalRunner({ workRoot, runsAsRoot: true });
    } finally {
      process.env.PATH = saved;
    }
    expect(await runner.isolation()).toEqual({
      mode: 'refused',
      reason:
        'bubblewrap is not installed; steps are never run unsandboxed as root: install bubblewrap (Debian: apt-get install bubblewrap) or run the platform as an unprivileged user',
    });
  });

  it('runs unsandboxed as an unprivileged user, saying so in the step log', async () => {
    const outside = path.join(tmp.dir, 'outside-never');
    mkdirSync(outside);
    const { runner } = runnerWith({ bwrap: 'never', runsAsRoot: false });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'plain', [`echo written > ${outside}/file.txt`], {
        image: 'alpine:3.20',
      }),
    );
    expect(result.outcome).toBe('success');
    expect(output.split('\n')[0]).toBe(
      "[runner] local, NOT sandboxed: bubblewrap disabled (PLATFORM_RUNNER_BWRAP=never); this step runs with the platform user's access to this machine; image alpine:3.20 noted but not used",
    );
    expect(readFileSync(path.join(outside, 'file.txt'), 'utf8')).toBe('written\n');
    expect(await runner.isolation()).toMatchObject({ mode: 'unsandboxed' });
    // network: none cannot be honoured without the sandbox: refused, not ignored.
    const none = await run(runner, stepRequest(workspace, pipelineId, 'none', ['true'], { network: 'none' }));
    expect(none.result).toMatchObject({ outcome: 'failure', exitCode: null });
    expect(none.result.error).toContain('network: none needs the bubblewrap sandbox');
    await workspace.dispose();
  });

  it('refuses when bubblewrap is required but unusable', async () => {
    const saved = process.env.PATH;
    process.env.PATH = path.join(tmp.dir, 'empty-path');
    try {
      expect(() => createLocalRunner({ workRoot, bwrap: 'required', runsAsRoot: false })).toThrow(
        'apt-get install bubblewrap',
      );
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe('local runner: process launcher', () => {
  const launchers: ProcessLauncher[] = [];
  afterAll(async () => {
    await Promise.all(launchers.map((l) => l.close()));
  });

  it.runIf(asRoot)(
    'fails the running steps clearly when the launcher dies, leaves nothing running, and recovers',
    async () => {
      const launcher = createProcessLauncher();
      launchers.push(launcher);
      const { runner, uid } = runnerWith({ launcher });
      const { pipelineId, workspace } = await workspaceFor(runner);
      const output: Buffer[] = [];
      const done = runner.runStep(
        stepRequest(workspace, pipelineId, 'orphaned', ['sleep 300 &', 'echo started', 'sleep 300'], {
          output,
        }),
      );
      await outputContains(output, 'started');
      // The sandbox's outer bubblewrap process; its parent is the launcher.
      const all = hostProcesses();
      const outer = all.find(
        (p) => p.comm === 'bwrap' && p.uid === uid && all.find((q) => q.pid === p.ppid)?.comm !== 'bwrap',
      );
      expect(outer).toBeDefined();
      const parent = all.find((p) => p.pid === outer!.ppid)!;
      expect(parent.pid).not.toBe(process.pid);
      expect(parent.comm).toBe('node');
      process.kill(parent.pid, 'SIGKILL');

      const result = await done;
      expect(result).toMatchObject({ outcome: 'failure', exitCode: null });
      expect(result.error).toContain('process launcher died');
      // bubblewrap dies with its parent, and the sandbox with it.
      if (asRoot)
        await eventually(async () => hostProcesses().every((p) => p.uid !== uid), 5_000, 'sandbox gone');

      const after = await run(runner, stepRequest(workspace, pipelineId, 'after', ['echo still works']));
      expect(after.result.outcome).toBe('success');
      expect(after.output).toContain('still works\n');
      await workspace.dispose();
    },
  );

  it('does not take a launcher that died during the bubblewrap probe for a sandbox that does not work', async () => {
    const real = createProcessLauncher();
    launchers.push(real);
    let probes = 0;
    const flaky: ProcessLauncher = {
      mode: 'process',
      spawn: (options) => {
        if (options.file === BWRAP && probes++ === 0) {
          return Promise.reject(new LauncherDiedError(LAUNCHER_DIED, 'injected by the test'));
        }
        return real.spawn(options);
      },
      close: () => real.close(),
    };
    const { runner } = runnerWith({ launcher: flaky });
    const { pipelineId, workspace } = await workspaceFor(runner);
    // The probe ran (and met the dead launcher) while the workspace was prepared; the step probes
    // again instead of taking that for a sandbox that does not work.
    const second = await run(runner, stepRequest(workspace, pipelineId, 'second', ['echo second']));
    expect(probes).toBe(3); // the failed probe, the probe again, the sandbox
    expect(second.result.outcome).toBe('success');
    expect(second.output).toMatch(SANDBOXED);
    expect(second.output).toContain('$ echo second\nsecond\n');
    await workspace.dispose();
  });

  it('fails a workspace clone clearly when the launcher dies, leaving nothing behind', async () => {
    const real = createProcessLauncher();
    launchers.push(real);
    let clones = 0;
    const flaky: ProcessLauncher = {
      mode: 'process',
      spawn: (options) => {
        if (options.args[0] === 'clone' && clones++ === 0) {
          return Promise.reject(new LauncherDiedError(LAUNCHER_DIED, 'injected by the test'));
        }
        return real.spawn(options);
      },
      close: () => real.close(),
    };
    const { runner } = runnerWith({ launcher: flaky });
    const pipelineId = randomUUID();
    await expect(runner.prepareWorkspace(pipelineId, source)).rejects.toThrow('process launcher died');
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    const workspace = await runner.prepareWorkspace(pipelineId, source);
    expect(readFileSync(path.join(workspace.dir, 'hello.txt'), 'utf8')).toBe('hello from the repo\n');
    await workspace.dispose();
  });

  it('can fork from the platform process itself (launcher: inline), with the same results', async () => {
    const { runner } = runnerWith({ launcher: 'inline' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'inline', ['echo out', 'echo err >&2', 'exit 3']),
    );
    expect(result).toMatchObject({ outcome: 'failure', exitCode: 3 });
    expect(output).toMatch(SANDBOXED);
    expect(output).toContain('$ echo out\nout\n$ echo err >&2\nerr\n');
    await workspace.dispose();
  });
});

describe('local runner: cleanupOrphans after a crash', () => {
  /** Runs one step in a separate Node process (the "platform") that the test then kills with SIGKILL. */
  async function crashMidStep(
    options: { bwrap: 'never' | 'required'; runsAsRoot: boolean; uid: number },
    commands: string[],
  ): Promise<{ pipelineId: string; workspace: Workspace; pgid: number }> {
    // The checkout is made directly (a runner would start the run's sandbox here, in this process).
    const pipelineId = randomUUID();
    const workspace = await prepareLocalWorkspace(
      workRoot,
      pipelineId,
      source,
      undefined,
      asRoot && options.runsAsRoot ? { uid: options.uid, gid: options.uid } : undefined,
    );
    const params = JSON.stringify({ workRoot, ...options, pipelineId, dir: workspace.dir, commands, source });
    const script = `
      const p = JSON.parse(process.env.STEP_PARAMS);
      const { createLocalRunner } = await import(${JSON.stringify(localModule)});
      const runner = createLocalRunner({ workRoot: p.workRoot, bwrap: p.bwrap, runsAsRoot: p.runsAsRoot, sandboxUser: { uid: p.uid, gid: p.uid } });
      await runner.runStep({
        runId: 'crash', pipelineId: p.pipelineId, stepName: 'crash', image: null, commands: p.commands,
        env: {}, timeoutSeconds: null, workspace: { dir: p.dir, dispose: async () => {} }, source: p.source,
        signal: new AbortController().signal, onOutput: (c) => process.stdout.write(c),
      });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', STEP_PARAMS: params },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await eventually(async () => out.includes('ready'), 20_000, 'step started in the crashing process');
    const pidFile = path.join(workRoot, pipelineId, 'pids', 'sandbox-host.pid');
    const pgid = await eventually(
      async () => (JSON.parse(readFileSync(pidFile, 'utf8')) as { pgid: number }).pgid,
      10_000,
      'pid file of the sandbox',
    );
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    return { pipelineId, workspace, pgid };
  }

  function groupAlive(pgid: number): boolean {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }

  it('kills a leftover unsandboxed group (platform as a normal user) and removes the workspace', async () => {
    const { pipelineId, pgid } = await crashMidStep({ bwrap: 'never', runsAsRoot: false, uid: nextUid++ }, [
      'sleep 300 > /dev/null 2>&1 &',
      'echo ready',
      'sleep 300',
    ]);
    // The launcher is gone with the crashed process; the supervisor's group survived it.
    expect(groupAlive(pgid)).toBe(true);
    await createLocalRunner({ workRoot, bwrap: 'never', runsAsRoot: false }).cleanupOrphans([pipelineId]);
    await eventually(async () => !groupAlive(pgid), 5_000, 'orphaned group gone');
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('leaves nothing running when the platform dies during a sandboxed step (die-with-parent)', async () => {
    const uid = nextUid++;
    const { pipelineId, pgid } = await crashMidStep({ bwrap: 'required', runsAsRoot: asRoot, uid }, [
      'sleep 300 > /dev/null 2>&1 &',
      'setsid sleep 301 > /dev/null 2>&1 < /dev/null &',
      'echo ready',
      'sleep 300',
    ]);
    await eventually(async () => !groupAlive(pgid), 5_000, 'sandbox gone with its parent');
    if (asRoot) {
      await eventually(
        async () => hostProcesses().every((p) => p.uid !== uid),
        5_000,
        'no step process left',
      );
    }
    await createLocalRunner({ workRoot }).cleanupOrphans([pipelineId]);
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('does not kill a recorded pid that no longer leads its own process group', async () => {
    const { runner } = runnerWith();
    const { pipelineId } = await workspaceFor(runner);
    // Same process group as the test worker: a recycled pid that is not one of our sandboxes.
    const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(bystander);
    mkdirSync(path.join(workRoot, pipelineId, 'pids'), { recursive: true });
    writeFileSync(
      path.join(workRoot, pipelineId, 'pids', 'stale.pid'),
      JSON.stringify({ pgid: bystander.pid, startTime: null, runId: 'x' }),
    );

    await runner.cleanupOrphans([pipelineId]);
    expect(existsSync(`/proc/${bystander.pid}`)).toBe(true);
    expect(bystander.exitCode).toBeNull();
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    bystander.kill('SIGKILL');
  });
});
