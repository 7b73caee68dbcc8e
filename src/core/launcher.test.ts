import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../../test/helpers/wait.js';
import {
  createProcessLauncher,
  LAUNCHER_DIED,
  type LaunchedProcess,
  LauncherDiedError,
  type OutputStream,
  type ProcessLauncher,
} from './launcher.js';

const launcherModule = fileURLToPath(new URL('./launcher.ts', import.meta.url));
const PATH = '/usr/local/bin:/usr/bin:/bin';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function groupAlive(pgid: number): boolean {
  return alive(-pgid);
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** /proc/<pid>/stat fields after the command name: [state, ppid, pgrp, session, …]. */
function stat(pid: number): { ppid: number; pgrp: number; session: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) };
}

interface Collected {
  chunks: Array<[string, OutputStream]>;
  text(): string;
}

function collect(child: LaunchedProcess): Collected {
  const chunks: Array<[string, OutputStream]> = [];
  child.onOutput((chunk, stream) => chunks.push([chunk.toString('utf8'), stream]));
  return { chunks, text: () => chunks.map(([c]) => c).join('') };
}

const groups: number[] = [];
const launchers: ProcessLauncher[] = [];
const helpers: ChildProcess[] = [];
const scratch = mkdtempSync(path.join(tmpdir(), 'platform-launcher-'));

afterAll(async () => {
  for (const pgid of groups) killGroup(pgid);
  for (const helper of helpers) helper.kill('SIGKILL');
  await Promise.all(launchers.map((l) => l.close()));
  rmSync(scratch, { recursive: true, force: true });
});

function launcherFor(mode: 'process' | 'inline'): ProcessLauncher {
  const launcher = createProcessLauncher({ mode });
  launchers.push(launcher);
  return launcher;
}

describe.each(['process', 'inline'] as const)('launcher (%s)', (mode) => {
  const launcher = launcherFor(mode);

  it('says which mode it is', () => {
    expect(launcher.mode).toBe(mode);
  });

  it('starts a process in its own session and process group, in the given directory', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'pwd; echo "args: $0 $1"', 'first', 'second'],
      cwd: scratch,
      env: { PATH },
    });
    const out = collect(child);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    await child.closed;
    expect(out.text()).toBe(`${realpathSync(scratch)}\nargs: first second\n`);
    expect(child.pid).toBeGreaterThan(1);
  });

  it('makes the process the leader of a new session and group, with stdin on /dev/null', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'readlink /proc/self/fd/0; cat; echo after-cat; sleep 300'],
      env: { PATH },
    });
    groups.push(child.pid);
    const out = collect(child);
    await eventually(() => out.text().includes('after-cat'), 5000, 'cat to see end of input');
    expect(out.text()).toBe('/dev/null\nafter-cat\n');
    expect(stat(child.pid)).toMatchObject({ pgrp: child.pid, session: child.pid });
    killGroup(child.pid);
    expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('delivers stdout and stderr chunks in the order they were written, each with its stream', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      // A pause between writes: two pipes have no common order otherwise.
      args: [
        '-c',
        'echo out-1; sleep 0.05; echo err-1 >&2; sleep 0.05; echo out-2; sleep 0.05; echo err-2 >&2',
      ],
      env: { PATH },
    });
    const out = collect(child);
    await child.exited;
    await child.closed;
    expect(out.chunks).toEqual([
      ['out-1\n', 'stdout'],
      ['err-1\n', 'stderr'],
      ['out-2\n', 'stdout'],
      ['err-2\n', 'stderr'],
    ]);
  });

  it('keeps output written before the first listener was attached', async () => {
    const child = await launcher.spawn({ file: '/bin/echo', args: ['early bird'], env: { PATH } });
    await child.exited;
    await child.closed;
    expect(collect(child).text()).toBe('early bird\n');
  });

  it('passes binary output through unchanged, and all of a large output', async () => {
    const bytes = await launcher.spawn({
      file: '/usr/bin/printf',
      args: ['\\000\\377\\001\\376'],
      env: { PATH },
    });
    const got: Buffer[] = [];
    bytes.onOutput((chunk) => got.push(chunk));
    await bytes.closed;
    expect(Buffer.concat(got)).toEqual(Buffer.from([0, 255, 1, 254]));
    expect(Buffer.isBuffer(got[0])).toBe(true);

    const big = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'head -c 8000000 /dev/zero'],
      env: { PATH },
    });
    let total = 0;
    let nonZero = 0;
    big.onOutput((chunk) => {
      total += chunk.length;
      for (const b of chunk) if (b !== 0) nonZero++;
    });
    await big.exited;
    await big.closed;
    expect(total).toBe(8_000_000);
    expect(nonZero).toBe(0);
  });

  it('reports exit codes and signals', async () => {
    const failed = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'exit 7'], env: { PATH } });
    expect(await failed.exited).toEqual({ code: 7, signal: null });
    const killed = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'kill -TERM $$'], env: { PATH } });
    expect(await killed.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('gives the process exactly the environment it was given', async () => {
    process.env.PLATFORM_LAUNCHER_LEAK_TEST = 'leaked';
    try {
      const child = await launcher.spawn({
        file: '/usr/bin/env',
        args: ['-0'],
        env: { PATH: '/bin:/usr/bin', ONLY: 'this one' },
      });
      const got: Buffer[] = [];
      child.onOutput((chunk) => got.push(chunk));
      expect((await child.exited).code).toBe(0);
      await child.closed;
      const vars = Buffer.concat(got).toString('utf8').split('\0').filter(Boolean).sort();
      expect(vars).toEqual(['ONLY=this one', 'PATH=/bin:/usr/bin']);
    } finally {
      delete process.env.PLATFORM_LAUNCHER_LEAK_TEST;
    }
  });

  it('looks the program up on the PATH of the given environment', async () => {
    const child = await launcher.spawn({ file: 'sh', args: ['-c', 'echo found'], env: { PATH: '/bin' } });
    const out = collect(child);
    await child.closed;
    expect(out.text()).toBe('found\n');
    await expect(launcher.spawn({ file: 'sh', args: [], env: { PATH: scratch } })).rejects.toThrow(/ENOENT/);
  });

  it('rejects a missing program or directory with the spawn error, and keeps working', async () => {
    await expect(launcher.spawn({ file: '/no/such/program', args: [], env: { PATH } })).rejects.toThrow(
      /ENOENT/,
    );
    await expect(
      launcher.spawn({
        file: '/bin/sh',
        args: ['-c', 'true'],
        cwd: path.join(scratch, 'missing'),
        env: { PATH },
      }),
    ).rejects.toThrow(/ENOENT/);
    const after = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'exit 0'], env: { PATH } });
    expect((await after.exited).code).toBe(0);
  });

  it('lets the caller kill the whole process group by its id', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', "sleep 300 & sh -c 'sleep 301 & wait' & echo started; wait"],
      env: { PATH },
    });
    groups.push(child.pid);
    const out = collect(child);
    await eventually(() => out.text().includes('started'), 5000, 'started');
    process.kill(-child.pid, 'SIGTERM');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
    await child.closed;
    await eventually(() => !groupAlive(child.pid), 5000, 'group gone');
  });

  it('delivers piped input exactly, binary bytes included, and end() is the end of input', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'cat; echo after-eof >&2'],
      env: { PATH },
      stdin: 'pipe',
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.onOutput((chunk, stream) => {
      if (stream === 'stdout') stdout.push(chunk);
      else stderr += chunk.toString('utf8');
    });
    const bytes = Buffer.from([0, 255, 1, 254, 10, 13]);
    child.write(bytes);
    child.write('héllo');
    child.write('');
    await eventually(() => Buffer.concat(stdout).length === bytes.length + 6, 5000, 'input echoed');
    // cat is still waiting for more: stdin is open until end().
    expect(stderr).toBe('');
    child.end();
    child.end();
    expect(await child.exited).toEqual({ code: 0, signal: null });
    await child.closed;
    expect(Buffer.concat(stdout)).toEqual(Buffer.concat([bytes, Buffer.from('héllo', 'utf8')]));
    expect(stderr).toBe('after-eof\n');
  });

  it('delivers a large input (1 MB) completely', async () => {
    const child = await launcher.spawn({ file: '/bin/cat', args: [], env: { PATH }, stdin: 'pipe' });
    const got: Buffer[] = [];
    child.onOutput((chunk) => got.push(chunk));
    const input = Buffer.alloc(1024 * 1024 + 7);
    for (let i = 0; i < input.length; i++) input[i] = (i * 31 + (i >> 8)) & 0xff;
    child.write(input.subarray(0, 100_000));
    child.write(input.subarray(100_000));
    child.end();
    expect(await child.exited).toEqual({ code: 0, signal: null });
    await child.closed;
    expect(Buffer.concat(got).equals(input)).toBe(true);
  });

  it('drops input quietly when the process exits without reading it (EPIPE), and keeps working', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'exec 0<&-; echo gone'],
      env: { PATH },
      stdin: 'pipe',
    });
    const out = collect(child);
    child.write(Buffer.alloc(2 * 1024 * 1024, 1));
    expect(await child.exited).toEqual({ code: 0, signal: null });
    await child.closed;
    // After the exit: nothing to write to, nothing thrown.
    child.write('more');
    child.end();
    expect(out.text()).toBe('gone\n');
    const after = await launcher.spawn({ file: '/bin/cat', args: [], env: { PATH }, stdin: 'pipe' });
    const afterOut = collect(after);
    after.write('still fine');
    after.end();
    await after.closed;
    expect(afterOut.text()).toBe('still fine');
  });

  it('refuses write() on a process whose stdin is /dev/null', async () => {
    const child = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'exit 0'], env: { PATH } });
    expect(() => child.write('x')).toThrow(/not piped/);
    expect(() => child.end()).toThrow(/not piped/);
    await child.closed;
  });

  it('reports a spawn error with its code', async () => {
    const err = await launcher
      .spawn({ file: '/no/such/program', args: [], env: { PATH } })
      .catch((e: unknown) => e as NodeJS.ErrnoException);
    expect(err).toMatchObject({ code: 'ENOENT' });
  });

  it('stops waiting for output on release() when an escaped process keeps the pipe open', async () => {
    const child = await launcher.spawn({
      file: '/bin/sh',
      // setsid: out of the group, still holding stdout.
      args: ['-c', "setsid sh -c 'echo escaped $$; exec sleep 300' & echo leader done"],
      env: { PATH },
    });
    const out = collect(child);
    expect((await child.exited).code).toBe(0);
    let closed = false;
    void child.closed.then(() => {
      closed = true;
    });
    const escaped = await eventually(() => /escaped (\d+)/.exec(out.text())?.[1], 5000, 'escaped pid');
    groups.push(Number(escaped));
    await eventually(() => out.text().includes('leader done'), 5000, 'leader output');
    expect(closed).toBe(false);
    child.release();
    await child.closed;
    expect(alive(Number(escaped))).toBe(true);
    killGroup(Number(escaped));
  });
});

describe('launcher process', () => {
  it('forks from a separate Node process whose own environment is PATH only', async () => {
    const launcher = launcherFor('process');
    const child = await launcher.spawn({ file: '/bin/sleep', args: ['300'], env: { PATH } });
    groups.push(child.pid);
    const launcherPid = stat(child.pid).ppid;
    expect(launcherPid).not.toBe(process.pid);
    expect(stat(launcherPid).ppid).toBe(process.pid);
    expect(readFileSync(`/proc/${launcherPid}/cmdline`, 'utf8').split('\0')[0]).toBe(process.execPath);
    const env = readFileSync(`/proc/${launcherPid}/environ`, 'utf8').split('\0').filter(Boolean);
    // NODE_CHANNEL_* are Node's own IPC set-up, consumed at start.
    const names = env.map((v) => v.slice(0, v.indexOf('='))).filter((n) => !n.startsWith('NODE_CHANNEL_'));
    expect(names).toEqual(['PATH']);
    killGroup(child.pid);
    await child.exited;
  });

  it('fails in-flight requests with a clear error when the launcher dies, then starts a new one', async () => {
    const launcher = launcherFor('process');
    const running = await launcher.spawn({
      file: '/bin/sh',
      args: ['-c', 'echo up; sleep 300'],
      env: { PATH },
    });
    groups.push(running.pid);
    const out = collect(running);
    await eventually(() => out.text() === 'up\n', 5000, 'output');
    const first = stat(running.pid).ppid;

    process.kill(first, 'SIGKILL');
    const err = await running.exited.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LauncherDiedError);
    expect((err as Error).message).toBe(LAUNCHER_DIED);
    expect((err as LauncherDiedError).detail).toBe('channel closed');
    await expect(running.closed).rejects.toThrow(LAUNCHER_DIED);
    // The launcher kills nothing: the caller owns the group (the local runner kills it).
    expect(groupAlive(running.pid)).toBe(true);
    killGroup(running.pid);

    const next = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'echo again'], env: { PATH } });
    const nextOut = collect(next);
    expect(await next.exited).toEqual({ code: 0, signal: null });
    await next.closed;
    expect(nextOut.text()).toBe('again\n');
    await eventually(() => !alive(first), 5000, 'old launcher reaped');
  });

  it('close() ends the launcher; a later spawn starts another', async () => {
    const launcher = launcherFor('process');
    const probe = await launcher.spawn({ file: '/bin/sleep', args: ['300'], env: { PATH } });
    groups.push(probe.pid);
    const launcherPid = stat(probe.pid).ppid;
    await launcher.close();
    expect(alive(launcherPid)).toBe(false);
    await expect(probe.exited).rejects.toThrow('process launcher closed');
    killGroup(probe.pid);
    const after = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'exit 4'], env: { PATH } });
    expect((await after.exited).code).toBe(4);
  });

  /** Runs a script in a fresh Node process that imports the launcher module from the sources. */
  function runHelper(body: string): { child: ChildProcess; lines: string[] } {
    const script = `
      const { createProcessLauncher } = await import(${JSON.stringify(launcherModule)});
      ${body}
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? PATH },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    helpers.push(child);
    const lines: string[] = [];
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
    });
    return { child, lines };
  }

  it('does not keep its parent alive: a process that used a launcher and dropped it exits by itself', async () => {
    const { child, lines } = runHelper(`
      const launcher = createProcessLauncher();
      const p = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'echo $PPID'], env: { PATH: '/bin:/usr/bin' } });
      let out = '';
      p.onOutput((c) => { out += c.toString(); });
      await p.exited;
      await p.closed;
      console.log('launcher ' + out.trim());
    `);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    const launcherPid = Number(lines.find((l) => l.startsWith('launcher '))?.slice('launcher '.length));
    expect(launcherPid).toBeGreaterThan(1);
    await eventually(() => !alive(launcherPid), 5000, 'launcher gone with its parent');
  });

  it('exits when its parent is killed, leaving the processes it started to their owner', async () => {
    const { child, lines } = runHelper(`
      const launcher = createProcessLauncher();
      const p = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'echo $PPID; exec sleep 300'], env: { PATH: '/bin:/usr/bin' } });
      p.onOutput((c) => console.log('launcher ' + c.toString().trim() + ' step ' + p.pid));
      await p.exited;
    `);
    const line = await eventually(() => lines.find((l) => l.startsWith('launcher ')), 20_000, 'helper ready');
    const [, launcherPid, , stepPid] = line!.split(' ').map(Number);
    groups.push(stepPid!);
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    await eventually(() => !alive(launcherPid!), 5000, 'launcher gone with its parent');
    expect(alive(stepPid!)).toBe(true);
    expect(existsSync(`/proc/${stepPid}`)).toBe(true);
    killGroup(stepPid!);
  });

  it('ignores terminal signals: Ctrl-C reaches the whole foreground group, the platform decides', async () => {
    const launcher = launcherFor('process');
    const child = await launcher.spawn({ file: '/bin/sleep', args: ['300'], env: { PATH } });
    groups.push(child.pid);
    const launcherPid = stat(child.pid).ppid;
    process.kill(launcherPid, 'SIGINT');
    process.kill(launcherPid, 'SIGHUP');
    const again = await launcher.spawn({ file: '/bin/sh', args: ['-c', 'exit 0'], env: { PATH } });
    expect(stat(child.pid).ppid).toBe(launcherPid);
    expect((await again.exited).code).toBe(0);
    // ...and the handlers are not inherited: the step still dies of SIGINT.
    process.kill(child.pid, 'SIGINT');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGINT' });
  });
});
