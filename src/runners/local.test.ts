import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
import { createLocalRunner } from './local.js';
import type { RepoSource, Runner, StepRunRequest, StepRunResult, Workspace } from './types.js';

const BWRAP = '/usr/bin/bwrap';
const localModule = fileURLToPath(new URL('./local.ts', import.meta.url));

let tmp: ReturnType<typeof tempDir>;
let workRoot: string;
let source: RepoSource;
const children: ChildProcess[] = [];
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  tmp = tempDir('platform-runner-local-');
  workRoot = path.join(tmp.dir, 'work');
  const bare = path.join(tmp.dir, 'repo.git');
  const seed = path.join(tmp.dir, 'seed');
  await gitOk(['init', '--bare', bare]);
  await gitOk(['init', seed]);
  writeFileSync(path.join(seed, 'hello.txt'), 'hello from the repo\n');
  await gitOk(['add', 'hello.txt'], { cwd: seed });
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

async function run(runner: Runner, req: StepRunRequest): Promise<Ran> {
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

async function workspaceFor(runner: Runner): Promise<{ pipelineId: string; workspace: Workspace }> {
  const pipelineId = randomUUID();
  return { pipelineId, workspace: await runner.prepareWorkspace(pipelineId, source) };
}

function pidFile(pipelineId: string, step: string): string {
  return path.join(workRoot, pipelineId, 'pids', `${step}.pid`);
}

async function recordedGroup(pipelineId: string, step: string): Promise<number> {
  return eventually(
    async () => (JSON.parse(readFileSync(pidFile(pipelineId, step), 'utf8')) as { pgid: number }).pgid,
    10_000,
    `pid file of ${step}`,
  );
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ESRCH');
    return false;
  }
}

/** Processes (by /proc) whose process group is pgid. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // exited while listing
    }
  }
  return members;
}

async function outputContains(chunks: Buffer[], text: string): Promise<void> {
  await eventually(async () => Buffer.concat(chunks).toString().includes(text), 10_000, `output "${text}"`);
}

describe('local runner: workspace', () => {
  it('clones the repository and checks out the commit detached, outside the platform repository', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    expect(workspace.dir).toBe(path.join(workRoot, pipelineId, 'src'));
    expect(readFileSync(path.join(workspace.dir, 'hello.txt'), 'utf8')).toBe('hello from the repo\n');
    expect((await gitOk(['rev-parse', 'HEAD'], { cwd: workspace.dir })).trim()).toBe(source.sha);
    const head = await gitOk(['symbolic-ref', '-q', 'HEAD'], { cwd: workspace.dir }).catch(() => 'detached');
    expect(head).toBe('detached');

    await workspace.dispose();
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    await workspace.dispose();
  });

  it('fails clearly when the commit is not in the repository, leaving nothing behind', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const pipelineId = randomUUID();
    const missing = 'deadbeef'.repeat(5);
    await expect(runner.prepareWorkspace(pipelineId, { ...source, sha: missing })).rejects.toThrow(
      `commit ${missing} not found in ${source.repoDir}`,
    );
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('refuses a sha that git could read as an option and a pipeline id that is not a plain name', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    await expect(
      runner.prepareWorkspace(randomUUID(), { ...source, sha: '--upload-pack=x' }),
    ).rejects.toThrow('invalid commit sha');
    await expect(runner.prepareWorkspace('../escape', source)).rejects.toThrow('cannot name a workspace');
  });
});

describe('local runner: steps', () => {
  it('asserts that bubblewrap is installed (the isolation tests below rely on it)', () => {
    expect(existsSync(BWRAP)).toBe(true);
  });

  it('runs the commands in the checkout, echoes each one and captures stdout and stderr in order', async () => {
    const runner = createLocalRunner({ workRoot });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'build', ['echo out-1', 'echo err-1 >&2', 'cat hello.txt', 'pwd'], {
        image: 'node:20',
      }),
    );
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(result.error).toBeUndefined();
    expect(output).toBe(
      '[runner] local, isolated with bubblewrap; image node:20 noted but not used\n' +
        '$ echo out-1\nout-1\n' +
        '$ echo err-1 >&2\nerr-1\n' +
        '$ cat hello.txt\nhello from the repo\n' +
        `$ pwd\n${workspace.dir}\n`,
    );
    await workspace.dispose();
  });

  it('stops at the first failing command (set -e) and reports its exit code', async () => {
    const runner = createLocalRunner({ workRoot });
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
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
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
    expect(output.startsWith('[runner] local, not isolated (bubblewrap disabled)\n')).toBe(true);
    await workspace.dispose();
  });

  it('gives the step exactly the injected environment plus PATH, HOME and LANG', async () => {
    process.env.PLATFORM_RUNNER_LEAK_TEST = 'leaked-value';
    try {
      for (const bwrap of ['auto', 'never'] as const) {
        const runner = createLocalRunner({ workRoot, bwrap });
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
      }
    } finally {
      delete process.env.PLATFORM_RUNNER_LEAK_TEST;
    }
  });

  it('uses the PATH the step was given', async () => {
    const runner = createLocalRunner({ workRoot });
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

  it('kills the whole process group on timeout, background children and grandchildren included', async () => {
    for (const bwrap of ['auto', 'never'] as const) {
      const runner = createLocalRunner({ workRoot, bwrap });
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
      const pgid = await recordedGroup(pipelineId, 'slow');
      await outputContains(output, 'grandchild started');
      // sh, sleep 300, sh, sleep 301 (plus bwrap's own processes when isolated).
      expect(groupMembers(pgid).length).toBeGreaterThanOrEqual(4);

      const result = await done;
      expect(result).toMatchObject({ outcome: 'timeout', exitCode: null, error: 'timed out after 2s' });
      await eventually(async () => !groupAlive(pgid), 5_000, `group ${pgid} gone (${bwrap})`);
      expect(groupMembers(pgid)).toEqual([]);
      expect(existsSync(pidFile(pipelineId, 'slow'))).toBe(false);
      await workspace.dispose();
    }
  });

  it('follows SIGTERM with SIGKILL when the step ignores SIGTERM', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const output: Buffer[] = [];
    const done = runner.runStep(
      // An ignored signal stays ignored across exec: sh and sleep both ignore SIGTERM.
      stepRequest(workspace, pipelineId, 'stubborn', ["trap '' TERM", 'echo trapped', 'sleep 300'], {
        timeoutSeconds: 1,
        output,
      }),
    );
    const pgid = await recordedGroup(pipelineId, 'stubborn');
    await outputContains(output, 'trapped');
    expect(await done).toMatchObject({ outcome: 'timeout', error: 'timed out after 1s' });
    await eventually(async () => !groupAlive(pgid), 5_000, 'group gone');
    await workspace.dispose();
  });

  it('kills background processes left running when the step itself succeeds', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const output: Buffer[] = [];
    const done = runner.runStep(
      stepRequest(
        workspace,
        pipelineId,
        'bg',
        ['sleep 300 > /dev/null 2>&1 &', 'echo $! > bg.pid', 'while [ ! -e go ]; do sleep 0.05; done'],
        { output },
      ),
    );
    const pgid = await recordedGroup(pipelineId, 'bg');
    const bgPid = await eventually(
      async () => Number(readFileSync(path.join(workspace.dir, 'bg.pid'), 'utf8')),
      10_000,
    );
    writeFileSync(path.join(workspace.dir, 'go'), '');
    expect((await done).outcome).toBe('success');
    await eventually(async () => !groupAlive(pgid), 5_000, 'group gone');
    expect(existsSync(`/proc/${bgPid}`)).toBe(false);
    await workspace.dispose();
  });

  it('cancels a running step within seconds when the signal aborts', async () => {
    const runner = createLocalRunner({ workRoot });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const controller = new AbortController();
    const output: Buffer[] = [];
    const done = runner.runStep(
      stepRequest(workspace, pipelineId, 'cancel-me', ['echo started', 'sleep 300 & sleep 300'], {
        signal: controller.signal,
        output,
      }),
    );
    const pgid = await recordedGroup(pipelineId, 'cancel-me');
    await outputContains(output, 'started');
    const abortedAt = Date.now();
    controller.abort();
    const result = await done;
    expect(result.outcome).toBe('cancelled');
    expect(result.exitCode).toBeNull();
    expect(Date.now() - abortedAt).toBeLessThan(5_000);
    await eventually(async () => !groupAlive(pgid), 5_000, 'group gone');
    await workspace.dispose();
  });

  it('does not start a step whose signal is already aborted', async () => {
    const runner = createLocalRunner({ workRoot });
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

  it('runs two steps of one pipeline at the same time', async () => {
    const runner = createLocalRunner({ workRoot });
    const { pipelineId, workspace } = await workspaceFor(runner);
    // Each step waits for the other's marker: both can only finish if they really overlap.
    const waitFor = (mine: string, theirs: string) => [
      `touch ${mine}`,
      `i=0; while [ ! -e ${theirs} ]; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done`,
    ];
    const [a, b] = await Promise.all([
      run(runner, stepRequest(workspace, pipelineId, 'a', waitFor('a.ready', 'b.ready'))),
      run(runner, stepRequest(workspace, pipelineId, 'b', waitFor('b.ready', 'a.ready'))),
    ]);
    expect(a.result.outcome).toBe('success');
    expect(b.result.outcome).toBe('success');
    await workspace.dispose();
  });

  it('fails without side effects when the workspace has been disposed', async () => {
    const runner = createLocalRunner({ workRoot });
    const { pipelineId, workspace } = await workspaceFor(runner);
    await workspace.dispose();
    const { result } = await run(runner, stepRequest(workspace, pipelineId, 'late', ['true']));
    expect(result).toMatchObject({ outcome: 'failure', exitCode: null });
    expect(result.error).toBe(`workspace directory ${workspace.dir} does not exist`);
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('reports a command that does not exist as a failure with the shell exit code', async () => {
    const runner = createLocalRunner({ workRoot });
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

describe('local runner: process launcher', () => {
  const launchers: ProcessLauncher[] = [];
  afterAll(async () => {
    await Promise.all(launchers.map((l) => l.close()));
  });

  function parentOf(pid: number): number {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }

  it('starts steps from the launcher process, not from the platform', async () => {
    const launcher = createProcessLauncher();
    launchers.push(launcher);
    const runner = createLocalRunner({ workRoot, bwrap: 'never', launcher });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'parent', ['echo "parent=$PPID"']),
    );
    expect(result.outcome).toBe('success');
    const parent = Number(/parent=(\d+)/.exec(output)?.[1]);
    expect(parent).not.toBe(process.pid);
    expect(parentOf(parent)).toBe(process.pid);
    await workspace.dispose();
  });

  it('fails the running step clearly when the launcher dies, kills its group, and recovers', async () => {
    const launcher = createProcessLauncher();
    launchers.push(launcher);
    const runner = createLocalRunner({ workRoot, bwrap: 'never', launcher });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const output: Buffer[] = [];
    const done = runner.runStep(
      stepRequest(workspace, pipelineId, 'orphaned', ['sleep 300 &', 'echo started', 'sleep 300'], {
        output,
      }),
    );
    const pgid = await recordedGroup(pipelineId, 'orphaned');
    await outputContains(output, 'started');
    process.kill(parentOf(pgid), 'SIGKILL');

    const result = await done;
    expect(result).toMatchObject({ outcome: 'failure', exitCode: null, error: 'process launcher died' });
    await eventually(async () => !groupAlive(pgid), 5_000, 'group of the lost step gone');
    expect(existsSync(pidFile(pipelineId, 'orphaned'))).toBe(false);

    const after = await run(runner, stepRequest(workspace, pipelineId, 'after', ['echo still works']));
    expect(after.result.outcome).toBe('success');
    expect(after.output).toContain('still works\n');
    await workspace.dispose();
  });

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
    const runner = createLocalRunner({ workRoot, launcher: flaky });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const first = await run(runner, stepRequest(workspace, pipelineId, 'first', ['echo first']));
    expect(first.result).toMatchObject({
      outcome: 'failure',
      exitCode: null,
      error: 'process launcher died',
    });
    const second = await run(runner, stepRequest(workspace, pipelineId, 'second', ['echo second']));
    expect(second.result.outcome).toBe('success');
    expect(second.output).toBe('[runner] local, isolated with bubblewrap\n$ echo second\nsecond\n');
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
    const runner = createLocalRunner({ workRoot, bwrap: 'never', launcher: flaky });
    const pipelineId = randomUUID();
    await expect(runner.prepareWorkspace(pipelineId, source)).rejects.toThrow('process launcher died');
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    const workspace = await runner.prepareWorkspace(pipelineId, source);
    expect(readFileSync(path.join(workspace.dir, 'hello.txt'), 'utf8')).toBe('hello from the repo\n');
    await workspace.dispose();
  });

  it('can fork from the platform process itself (launcher: inline), with the same results', async () => {
    const runner = createLocalRunner({ workRoot, launcher: 'inline' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'inline', [
        'echo out',
        'echo err >&2',
        'echo "parent=$PPID"',
        'exit 3',
      ]),
    );
    expect(result).toMatchObject({ outcome: 'failure', exitCode: 3 });
    expect(output).toMatch(
      /^\[runner\] local, isolated with bubblewrap\n\$ echo out\nout\n\$ echo err >&2\nerr\n/,
    );
    await workspace.dispose();
  });
});

describe('local runner: bubblewrap isolation', () => {
  it('makes the workspace the only writable path on the host', async () => {
    // Not under /tmp: the sandbox has its own /tmp, so a write there would not prove anything.
    const outside = mkdtempSync('/var/tmp/platform-runner-outside-');
    cleanups.push(() => rmSync(outside, { recursive: true, force: true }));
    const runner = createLocalRunner({ workRoot, bwrap: 'required' });
    const { pipelineId, workspace } = await workspaceFor(runner);

    const inside = await run(
      runner,
      stepRequest(workspace, pipelineId, 'inside', [
        'echo built > artifact.txt',
        'echo cached > "$HOME/cache.txt"',
        'echo scratch > /tmp/scratch.txt',
      ]),
    );
    expect(inside.result.outcome).toBe('success');
    expect(inside.output.startsWith('[runner] local, isolated with bubblewrap\n')).toBe(true);
    expect(readFileSync(path.join(workspace.dir, 'artifact.txt'), 'utf8')).toBe('built\n');

    const outsideWrite = await run(
      runner,
      stepRequest(workspace, pipelineId, 'escape', [`echo pwned > ${outside}/file.txt`]),
    );
    expect(outsideWrite.result.outcome).toBe('failure');
    expect(outsideWrite.output).toMatch(/Read-only file system/);
    expect(existsSync(path.join(outside, 'file.txt'))).toBe(false);

    const etc = await run(
      runner,
      stepRequest(workspace, pipelineId, 'etc', ['touch /etc/platform-escape-test']),
    );
    expect(etc.result.outcome).toBe('failure');
    expect(existsSync('/etc/platform-escape-test')).toBe(false);

    // /tmp inside the sandbox is private.
    expect(existsSync('/tmp/scratch.txt')).toBe(false);
    await workspace.dispose();
  });

  it("hides other pipelines' workspaces and the paths it is told to hide", async () => {
    const dataDir = path.join(tmp.dir, 'data');
    mkdirSync(dataDir);
    writeFileSync(path.join(dataDir, 'master.key'), 'top-secret-key\n');
    const runner = createLocalRunner({ workRoot, bwrap: 'required', hidePaths: [dataDir] });
    const one = await workspaceFor(runner);
    const other = await workspaceFor(runner);

    const { result, output } = await run(
      runner,
      stepRequest(one.workspace, one.pipelineId, 'snoop', [
        `ls ${path.join(other.workspace.dir)} || echo "no other workspace"`,
        `cat ${dataDir}/master.key || echo "no key"`,
        'echo "processes: $(ls /proc | grep -c "^[0-9]")"',
      ]),
    );
    expect(result.outcome).toBe('success');
    expect(output).toContain('no other workspace');
    expect(output).toContain('no key');
    expect(output).not.toContain('top-secret-key');
    expect(output).not.toContain('hello.txt');
    // Its own pid namespace: only the step's processes are visible.
    const count = Number(/processes: (\d+)/.exec(output)?.[1]);
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(10);
    await one.workspace.dispose();
    await other.workspace.dispose();
  });

  it('runs without isolation, saying so, when bwrap is set to never', async () => {
    const outside = path.join(tmp.dir, 'outside-never');
    mkdirSync(outside);
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId, workspace } = await workspaceFor(runner);
    const { result, output } = await run(
      runner,
      stepRequest(workspace, pipelineId, 'plain', [`echo written > ${outside}/file.txt`], {
        image: 'alpine:3.20',
      }),
    );
    expect(result.outcome).toBe('success');
    expect(output.split('\n')[0]).toBe(
      '[runner] local, not isolated (bubblewrap disabled); image alpine:3.20 noted but not used',
    );
    expect(readFileSync(path.join(outside, 'file.txt'), 'utf8')).toBe('written\n');
    await workspace.dispose();
  });
});

describe('local runner: cleanupOrphans after a crash', () => {
  /** Runs one step in a separate Node process (the "platform") that the test then kills with SIGKILL. */
  async function crashMidStep(
    bwrap: 'never' | 'required',
    commands: string[],
  ): Promise<{ pipelineId: string; workspace: Workspace; pgid: number }> {
    const helper = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId, workspace } = await workspaceFor(helper);
    const params = JSON.stringify({ workRoot, bwrap, pipelineId, dir: workspace.dir, commands, source });
    const script = `
      const p = JSON.parse(process.env.STEP_PARAMS);
      const { createLocalRunner } = await import(${JSON.stringify(localModule)});
      const runner = createLocalRunner({ workRoot: p.workRoot, bwrap: p.bwrap });
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
    const pgid = await recordedGroup(pipelineId, 'crash');
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    return { pipelineId, workspace, pgid };
  }

  it('kills a leftover group whose shell is still running and removes the workspace', async () => {
    const { pipelineId, pgid } = await crashMidStep('never', [
      'sleep 300 > /dev/null 2>&1 &',
      'echo ready',
      'sleep 300',
    ]);
    expect(groupAlive(pgid)).toBe(true);

    const restarted = createLocalRunner({ workRoot, bwrap: 'never' });
    await restarted.cleanupOrphans([pipelineId]);
    await eventually(async () => !groupAlive(pgid), 5_000, 'orphaned group gone');
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('kills leftover background processes whose shell has already exited', async () => {
    const { pipelineId, workspace, pgid } = await crashMidStep('never', [
      'sleep 300 > /dev/null 2>&1 &',
      'echo ready',
      'while [ ! -e stop ]; do sleep 0.05; done',
    ]);
    writeFileSync(path.join(workspace.dir, 'stop'), '');
    await eventually(async () => !existsSync(`/proc/${pgid}`), 10_000, 'shell exited');
    expect(groupAlive(pgid)).toBe(true);

    await createLocalRunner({ workRoot, bwrap: 'never' }).cleanupOrphans([pipelineId]);
    await eventually(async () => !groupAlive(pgid), 5_000, 'orphaned background process gone');
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('leaves nothing running when the platform dies during an isolated step (die-with-parent)', async () => {
    const { pipelineId, pgid } = await crashMidStep('required', [
      'sleep 300 > /dev/null 2>&1 &',
      'echo ready',
      'sleep 300',
    ]);
    await eventually(async () => !groupAlive(pgid), 5_000, 'sandboxed group gone with its parent');
    await createLocalRunner({ workRoot }).cleanupOrphans([pipelineId]);
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
  });

  it('does not kill a recorded pid that no longer leads its own process group', async () => {
    const runner = createLocalRunner({ workRoot, bwrap: 'never' });
    const { pipelineId } = await workspaceFor(runner);
    // Same process group as the test worker: a recycled pid that is not one of our step groups.
    const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(bystander);
    mkdirSync(path.join(workRoot, pipelineId, 'pids'), { recursive: true });
    writeFileSync(
      pidFile(pipelineId, 'stale'),
      JSON.stringify({ pgid: bystander.pid, startTime: null, runId: 'x' }),
    );

    await runner.cleanupOrphans([pipelineId]);
    expect(existsSync(`/proc/${bystander.pid}`)).toBe(true);
    expect(bystander.exitCode).toBeNull();
    expect(existsSync(path.join(workRoot, pipelineId))).toBe(false);
    bystander.kill('SIGKILL');
  });
});
