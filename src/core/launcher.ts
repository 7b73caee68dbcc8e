import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Starting processes from a small helper process instead of the platform itself.
 *
 * On Linux, Node's child_process forks the calling process before exec, and the cost of fork grows
 * with the caller's memory (page tables): about 1 ms from a small Node process, 25 ms from the
 * platform once PGlite's WebAssembly heap is in (600 MB+). The launcher is a bare Node child started
 * once (lazily), which receives spawn requests over an IPC channel, forks from its own small heap and
 * relays the children's output and exit back. Killing does not go through it: the children lead their
 * own process groups and the caller signals those directly (`process.kill(-pgid)` is a syscall, no fork).
 */

export interface LaunchOptions {
  /** Program; looked up on `env.PATH` when it has no slash. */
  file: string;
  args: string[];
  /** Working directory; default: the caller's current directory. */
  cwd?: string;
  /** The complete environment of the process: nothing is inherited or added. */
  env: Record<string, string>;
  /**
   * `ignore` (default): stdin is /dev/null. `pipe`: the caller feeds it with `write()` and closes
   * it with `end()`. Writes are buffered by the launcher without flow control: for inputs that fit in
   * memory (commit messages, ref lists), not for streams.
   */
  stdin?: 'ignore' | 'pipe';
  /**
   * Runs the process as this user and group (the launcher must be root). Supplementary groups are
   * dropped (libuv calls setgroups(0) when either is set).
   */
  uid?: number;
  gid?: number;
}

export type OutputStream = 'stdout' | 'stderr';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A started process. It runs detached (its own session and process group, pgid = pid) with stdin on
 * /dev/null (or piped, on request) and stdout/stderr piped to the launcher.
 */
export interface LaunchedProcess {
  readonly pid: number;
  /**
   * Output chunks in arrival order across both streams. Chunks that arrive before the first listener
   * is attached are kept and delivered to it.
   */
  onOutput(listener: (chunk: Buffer, stream: OutputStream) => void): void;
  /** Resolves when the process exits; rejects with LauncherDiedError when the launcher dies first. */
  readonly exited: Promise<ProcessExit>;
  /**
   * Resolves once both pipes are closed (all output delivered; never before `exited`) or after
   * `release()`; rejects with LauncherDiedError when the launcher dies first.
   */
  readonly closed: Promise<void>;
  /**
   * Stops waiting for output: the pipes are closed and nothing more is delivered. For processes that
   * left the group (setsid) and keep a pipe open after the step has ended.
   */
  release(): void;
  /**
   * Writes to the process's stdin (spawned with `stdin: 'pipe'`; throws otherwise). Once the process
   * has exited or closed its stdin, data is dropped silently (the EPIPE is swallowed), as after `end()`
   * or `release()`.
   */
  write(data: Buffer | string): void;
  /** Closes the process's stdin (end of input). Idempotent. */
  end(): void;
}

export interface ProcessLauncher {
  /** `process`: forks happen in the launcher child; `inline`: in this process (for comparison). */
  readonly mode: LauncherMode;
  /**
   * Starts a process. Rejects with the spawn error (missing program, missing cwd…), or with
   * LauncherDiedError when the launcher died before answering.
   */
  spawn(options: LaunchOptions): Promise<LaunchedProcess>;
  /**
   * Stops the launcher child (processes it started keep running; their results are lost). A later
   * `spawn` starts a new one. Not needed at shutdown: an idle launcher does not keep the event loop
   * alive and exits when this process does.
   */
  close(): Promise<void>;
}

export type LauncherMode = 'process' | 'inline';

/** The launcher child exited (crash, OOM kill, `close()`) while a request was in flight. */
export class LauncherDiedError extends Error {
  constructor(
    message: string,
    /** How the launcher ended, for logs. */
    readonly detail: string,
  ) {
    super(message);
    this.name = 'LauncherDiedError';
  }
}

/** The message every in-flight request of a crashed launcher reports. */
export const LAUNCHER_DIED = 'process launcher died';

type Request =
  | {
      type: 'spawn';
      id: number;
      file: string;
      args: string[];
      cwd: string;
      env: Record<string, string>;
      stdin: 'ignore' | 'pipe';
      uid?: number;
      gid?: number;
    }
  | { type: 'stdin'; id: number; data: Buffer }
  | { type: 'stdin-end'; id: number }
  | { type: 'release'; id: number };

type Reply =
  | { type: 'spawned'; id: number; pid: number }
  | { type: 'spawn-error'; id: number; message: string; code?: string }
  | { type: 'output'; id: number; stream: OutputStream; data: Buffer }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'closed'; id: number };

/**
 * The launcher's program, run as `node -e` so that it works the same from the TypeScript sources
 * (vitest, tsx) and from dist/, with no file to locate at run time. CommonJS, no dependencies.
 *
 * - It exits when the channel to the platform closes, killing nothing: the runner owns the process
 *   groups (bubblewrap's --die-with-parent ends sandboxes with it; pid files cover the rest).
 * - Terminal and supervisor signals (SIGINT on Ctrl-C reaches the whole foreground group) do not end
 *   it: the platform decides when its steps stop, and the launcher goes when the platform goes. The
 *   handlers do not leak into children: libuv resets every signal to its default in the forked child.
 * - Flow control: when the channel's unsent backlog grows, every child's pipes are paused, so a
 *   chatty step is slowed down by the kernel pipe as it would be when read directly.
 */
const LAUNCHER_SOURCE = `
'use strict';
const { spawn } = require('node:child_process');
const children = new Map();
const HIGH_WATER = 64;
const LOW_WATER = 16;
let unsent = 0;
let paused = false;
const sent = () => {
  unsent--;
  if (paused && unsent <= LOW_WATER) {
    paused = false;
    for (const child of children.values()) { child.stdout.resume(); child.stderr.resume(); }
  }
};
const send = (message) => {
  if (!process.connected) return;
  unsent++;
  process.send(message, undefined, undefined, sent);
  if (!paused && unsent >= HIGH_WATER) {
    paused = true;
    for (const child of children.values()) { child.stdout.pause(); child.stderr.pause(); }
  }
};
const start = (m) => {
  let child;
  try {
    child = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: [m.stdin, 'pipe', 'pipe'], uid: m.uid, gid: m.gid });
  } catch (err) {
    send({ type: 'spawn-error', id: m.id, message: String((err && err.message) || err), code: err && err.code });
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (err) => send({ type: 'spawn-error', id: m.id, message: err.message, code: err.code }));
    return;
  }
  // A process that exits (or closes stdin) before reading all its input: EPIPE, nothing to report.
  if (child.stdin) child.stdin.on('error', () => {});
  children.set(m.id, child);
  send({ type: 'spawned', id: m.id, pid: child.pid });
  if (paused) { child.stdout.pause(); child.stderr.pause(); }
  child.stdout.on('data', (data) => send({ type: 'output', id: m.id, stream: 'stdout', data }));
  child.stderr.on('data', (data) => send({ type: 'output', id: m.id, stream: 'stderr', data }));
  child.on('error', () => {});
  child.on('exit', (code, signal) => send({ type: 'exit', id: m.id, code, signal }));
  child.on('close', () => {
    children.delete(m.id);
    send({ type: 'closed', id: m.id });
  });
};
process.on('message', (m) => {
  if (m.type === 'spawn') start(m);
  else if (m.type === 'stdin' || m.type === 'stdin-end') {
    const child = children.get(m.id);
    const stdin = child && child.stdin;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    if (m.type === 'stdin') stdin.write(m.data);
    else stdin.end();
  } else if (m.type === 'release') {
    const child = children.get(m.id);
    if (child) { child.stdout.destroy(); child.stderr.destroy(); }
  }
});
process.on('disconnect', () => process.exit(0));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {});
`;

/** Default launcher mode: forks happen out of process. */
export function createProcessLauncher(options: { mode?: LauncherMode } = {}): ProcessLauncher {
  return (options.mode ?? 'process') === 'inline' ? createInlineLauncher() : createLauncherChild();
}

let shared: ProcessLauncher | undefined;
/**
 * One launcher per platform process, shared by runGit, every local runner and workspace: the launcher
 * holds no per-run state, and one idle Node process is enough.
 */
export function sharedProcessLauncher(): ProcessLauncher {
  shared ??= createLauncherChild();
  return shared;
}

class Launched implements LaunchedProcess {
  readonly exited: Promise<ProcessExit>;
  readonly closed: Promise<void>;
  #listeners: Array<(chunk: Buffer, stream: OutputStream) => void> = [];
  #early: Array<[Buffer, OutputStream]> = [];
  #released = false;
  #inputEnded = false;
  #settleExit!: (exit: ProcessExit) => void;
  #failExit!: (err: Error) => void;
  #settleClosed!: () => void;
  #failClosed!: (err: Error) => void;

  constructor(
    readonly pid: number,
    private readonly onRelease: () => void,
    /** Null when stdin is /dev/null. */
    private readonly input: { write(data: Buffer): void; end(): void } | null,
  ) {
    this.exited = new Promise((resolve, reject) => {
      this.#settleExit = resolve;
      this.#failExit = reject;
    });
    this.closed = new Promise((resolve, reject) => {
      this.#settleClosed = resolve;
      this.#failClosed = reject;
    });
    // A caller that awaits only one of them must not turn a launcher crash into an unhandled rejection.
    this.exited.catch(() => {});
    this.closed.catch(() => {});
  }

  onOutput(listener: (chunk: Buffer, stream: OutputStream) => void): void {
    this.#listeners.push(listener);
    if (this.#listeners.length === 1) {
      const early = this.#early;
      this.#early = [];
      for (const [chunk, stream] of early) listener(chunk, stream);
    }
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#early = [];
    this.onRelease();
    this.#settleClosed();
  }

  write(data: Buffer | string): void {
    if (!this.input) throw new Error('stdin of this process is not piped (spawn it with stdin: "pipe")');
    if (this.#inputEnded || this.#released) return;
    const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (buffer.length > 0) this.input.write(buffer);
  }

  end(): void {
    if (!this.input) throw new Error('stdin of this process is not piped (spawn it with stdin: "pipe")');
    if (this.#inputEnded) return;
    this.#inputEnded = true;
    this.input.end();
  }

  output(chunk: Buffer, stream: OutputStream): void {
    if (this.#released) return;
    if (this.#listeners.length === 0) this.#early.push([chunk, stream]);
    for (const listener of this.#listeners) listener(chunk, stream);
  }

  exit(exit: ProcessExit): void {
    this.#settleExit(exit);
  }

  close(): void {
    this.#settleClosed();
  }

  fail(err: Error): void {
    this.#failExit(err);
    this.#failClosed(err);
  }
}

/** Forks in this process, as Node does by default: the reference the launcher is measured against. */
function createInlineLauncher(): ProcessLauncher {
  return {
    mode: 'inline',
    spawn(options) {
      return new Promise((resolve, reject) => {
        let child: ChildProcess;
        try {
          child = spawn(options.file, options.args, {
            cwd: options.cwd,
            env: options.env,
            detached: true,
            stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
            ...(options.uid !== undefined ? { uid: options.uid } : {}),
            ...(options.gid !== undefined ? { gid: options.gid } : {}),
          });
        } catch (err) {
          reject(err);
          return;
        }
        const pid = child.pid;
        if (pid === undefined) {
          child.once('error', reject);
          return;
        }
        const stdin = child.stdin;
        // A process that exits (or closes stdin) before reading all its input: EPIPE, nothing to report.
        stdin?.on('error', () => {});
        const input = stdin
          ? {
              write: (data: Buffer) => {
                if (!stdin.destroyed && !stdin.writableEnded) stdin.write(data);
              },
              end: () => {
                if (!stdin.destroyed && !stdin.writableEnded) stdin.end();
              },
            }
          : null;
        const launched = new Launched(
          pid,
          () => {
            child.stdout?.destroy();
            child.stderr?.destroy();
          },
          input,
        );
        child.stdout?.on('data', (chunk: Buffer) => launched.output(chunk, 'stdout'));
        child.stderr?.on('data', (chunk: Buffer) => launched.output(chunk, 'stderr'));
        // After a successful start, 'error' only reports a failed kill(), which nobody calls here.
        child.on('error', () => {});
        child.on('exit', (code, signal) => launched.exit({ code, signal }));
        child.on('close', () => launched.close());
        resolve(launched);
      });
    },
    async close() {},
  };
}

interface Incarnation {
  child: ChildProcess;
  pending: Map<number, { resolve: (p: Launched) => void; reject: (err: Error) => void; stdin: boolean }>;
  running: Map<number, Launched>;
  dead: boolean;
  /** Set by close(): in-flight requests then report a closed launcher rather than a crash. */
  closing: boolean;
}

function createLauncherChild(): ProcessLauncher {
  let current: Incarnation | undefined;
  let nextId = 1;

  /** Keeps this process alive only while something is in flight; an idle launcher holds nothing. */
  const updateRef = (inc: Incarnation) => {
    if (inc.dead) return;
    const busy = inc.pending.size + inc.running.size > 0;
    if (busy) {
      inc.child.ref();
      inc.child.channel?.ref();
    } else {
      inc.child.unref();
      inc.child.channel?.unref();
    }
  };

  const die = (inc: Incarnation, detail: string) => {
    if (inc.dead) return;
    inc.dead = true;
    if (current === inc) current = undefined;
    const err = new LauncherDiedError(inc.closing ? 'process launcher closed' : LAUNCHER_DIED, detail);
    for (const { reject } of inc.pending.values()) reject(err);
    for (const launched of inc.running.values()) launched.fail(err);
    inc.pending.clear();
    inc.running.clear();
    // A launcher that is still there (its channel broke) must not linger or keep this process alive.
    if (inc.child.exitCode === null && inc.child.signalCode === null) inc.child.kill('SIGKILL');
    inc.child.unref();
  };

  const onReply = (inc: Incarnation, reply: Reply) => {
    switch (reply.type) {
      case 'spawned': {
        const waiter = inc.pending.get(reply.id);
        if (!waiter) return;
        inc.pending.delete(reply.id);
        const id = reply.id;
        const input = waiter.stdin
          ? {
              write: (data: Buffer) => send(inc, { type: 'stdin', id, data }),
              end: () => send(inc, { type: 'stdin-end', id }),
            }
          : null;
        const launched = new Launched(reply.pid, () => send(inc, { type: 'release', id }), input);
        inc.running.set(reply.id, launched);
        waiter.resolve(launched);
        return;
      }
      case 'spawn-error': {
        const waiter = inc.pending.get(reply.id);
        if (!waiter) return;
        inc.pending.delete(reply.id);
        waiter.reject(Object.assign(new Error(reply.message), reply.code ? { code: reply.code } : {}));
        updateRef(inc);
        return;
      }
      case 'output':
        inc.running.get(reply.id)?.output(reply.data, reply.stream);
        return;
      case 'exit':
        inc.running.get(reply.id)?.exit({ code: reply.code, signal: reply.signal });
        return;
      case 'closed': {
        const launched = inc.running.get(reply.id);
        if (!launched) return;
        inc.running.delete(reply.id);
        launched.close();
        updateRef(inc);
        return;
      }
    }
  };

  const send = (inc: Incarnation, request: Request) => {
    if (inc.dead) return;
    try {
      inc.child.send(request, undefined, undefined, (err) => {
        if (err) die(inc, `channel error: ${err.message}`);
      });
    } catch (err) {
      die(inc, `channel error: ${(err as Error).message}`);
    }
  };

  const start = (): Incarnation => {
    const child = spawn(process.execPath, ['--input-type=commonjs', '-e', LAUNCHER_SOURCE], {
      // Its own environment is PATH only (no NODE_OPTIONS, loaders or secrets); children get exactly
      // the environment of their request.
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' },
      // stderr inherited: if the launcher itself fails, its stack trace lands in the platform's log.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    const inc: Incarnation = { child, pending: new Map(), running: new Map(), dead: false, closing: false };
    child.on('message', (reply: Reply) => onReply(inc, reply));
    child.on('error', (err) => die(inc, `launcher error: ${err.message}`));
    child.on('exit', (code, signal) => die(inc, signal ? `killed by ${signal}` : `exited with ${code}`));
    // IPC closes before 'exit' is seen; nothing more can arrive, so requests fail now rather than later.
    child.on('disconnect', () => die(inc, 'channel closed'));
    return inc;
  };

  return {
    mode: 'process',
    spawn(options) {
      if (!current || current.dead) current = start();
      const inc = current;
      const id = nextId++;
      return new Promise<LaunchedProcess>((resolve, reject) => {
        const stdin = options.stdin ?? 'ignore';
        inc.pending.set(id, { resolve, reject, stdin: stdin === 'pipe' });
        updateRef(inc);
        send(inc, {
          type: 'spawn',
          id,
          file: options.file,
          args: options.args,
          cwd: options.cwd ?? process.cwd(),
          env: options.env,
          stdin,
          ...(options.uid !== undefined ? { uid: options.uid } : {}),
          ...(options.gid !== undefined ? { gid: options.gid } : {}),
        });
      });
    },
    async close() {
      const inc = current;
      if (!inc || inc.dead) return;
      current = undefined;
      inc.closing = true;
      const exited = new Promise<void>((resolve) => {
        if (inc.child.exitCode !== null || inc.child.signalCode !== null) resolve();
        else inc.child.once('exit', () => resolve());
      });
      if (inc.child.connected) inc.child.disconnect();
      die(inc, 'closed');
      await exited;
    },
  };
}
