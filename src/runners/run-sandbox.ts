import { constants } from 'node:os';
import type { LaunchedProcess, LaunchOptions, ProcessExit, ProcessLauncher } from '../core/launcher.js';
import { FRAME, FRAME_HEADER_BYTES, frame, REQUEST } from './supervisor.js';

/** What a step is started with (see the RUN request in supervisor.ts). */
export interface RunRequest {
  script: string;
  env: Record<string, string>;
  cwd: string;
  /** A fresh HOME is made under this directory (`<prefix>XXXXXX`) and set in the step's environment. */
  homeParent: string;
  homePrefix: string;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** The sandbox (or, unsandboxed, the supervisor) ended while steps were still in it. */
export class SandboxEndedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxEndedError';
  }
}

/** One step started by the supervisor. */
export interface SupervisedStep {
  /** Resolves when the shell exits; rejects when the step could not start or the sandbox ended first. */
  readonly exited: Promise<ProcessExit>;
  /** Resolves once its output is all delivered (or given up on); rejects like `exited`. */
  readonly closed: Promise<void>;
  /** Signals the step's process group. */
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
}

interface StepState {
  onOutput(chunk: Buffer): void;
  exited: Deferred<ProcessExit>;
  closed: Deferred<void>;
}

/**
 * The platform's side of one supervisor: started once per run (through the process launcher, inside
 * bubblewrap when sandboxed), then asked to run steps. If the supervisor or its sandbox ends, every
 * step still in it fails with what it printed on stderr.
 */
export class RunSandbox {
  private readonly steps = new Map<number, StepState>();
  private nextId = 1;
  private pending: Buffer = Buffer.alloc(0);
  private stderr = '';
  /** Resolves when the sandbox has ended (for whatever reason). */
  readonly ended: Promise<void>;
  private markEnded!: () => void;
  private endedWith: SandboxEndedError | null = null;

  private constructor(private readonly process: LaunchedProcess) {
    this.ended = new Promise((resolve) => {
      this.markEnded = resolve;
    });
    process.onOutput((chunk, stream) => {
      if (stream === 'stderr') {
        if (this.stderr.length < 8192) this.stderr += chunk.toString('utf8');
        return;
      }
      this.receive(chunk);
    });
    const end = (why: string) => this.end(why);
    process.exited.then(
      (exit) =>
        end(
          exit.code === 0
            ? 'the sandbox ended'
            : `the sandbox ended (${exit.code === null ? `killed by ${exit.signal}` : `exit code ${exit.code}`})`,
        ),
      (err: unknown) => end(err instanceof Error ? err.message : String(err)),
    );
  }

  /** Starts the supervisor process; `options` is the full command (bwrap … node -e …, or node -e …). */
  static async start(launcher: ProcessLauncher, options: LaunchOptions): Promise<RunSandbox> {
    const launched = await launcher.spawn({ ...options, stdin: 'pipe' });
    return new RunSandbox(launched);
  }

  /** Process group of the sandbox on the host (recorded for crash clean-up). */
  get pgid(): number {
    return this.process.pid;
  }

  /** Starts a step. Its fields must not contain NUL bytes (the caller checks: see containsNul). */
  run(request: RunRequest, onOutput: (chunk: Buffer) => void): SupervisedStep {
    const id = this.nextId++;
    const state: StepState = {
      onOutput,
      exited: deferred(),
      closed: deferred(),
    };
    const handle: SupervisedStep = {
      exited: state.exited.promise,
      closed: state.closed.promise,
      kill: (signal) => this.send(frame(REQUEST.kill, id, Buffer.from(signal.slice(3)))),
    };
    if (this.endedWith) {
      failStep(state, this.endedWith);
      return handle;
    }
    this.steps.set(id, state);
    const fields = [
      request.cwd,
      request.homeParent,
      request.homePrefix,
      request.script,
      ...Object.entries(request.env).map(([k, v]) => `${k}=${v}`),
    ];
    this.send(frame(REQUEST.run, id, Buffer.from(fields.join('\0'), 'utf8')));
    return handle;
  }

  /** Kills the sandbox and everything in it. */
  destroy(): void {
    try {
      process.kill(-this.process.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    this.process.release();
  }

  /** Ends the supervisor (it kills what runs in it) and waits for it, killing it after `graceMs`. */
  async close(graceMs = 2_000): Promise<void> {
    if (this.endedWith) return;
    this.process.end();
    const timer = setTimeout(() => this.destroy(), graceMs);
    await this.process.exited.catch(() => {});
    clearTimeout(timer);
  }

  private send(data: Buffer): void {
    if (this.endedWith) return;
    this.process.write(data);
  }

  private receive(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= FRAME_HEADER_BYTES) {
      const length = buf.readUInt32BE(0);
      if (buf.length < FRAME_HEADER_BYTES + length) break;
      const kind = buf[4]!;
      const id = buf.readUInt32BE(5);
      const payload = buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      buf = buf.subarray(FRAME_HEADER_BYTES + length);
      this.dispatch(kind, id, payload);
    }
    // Copied: a retained subarray would pin the whole chunk it came from.
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
  }

  /** READY and STARTED frames carry nothing the runner uses: a request waits for EXIT and CLOSED. */
  private dispatch(kind: number, id: number, payload: Buffer): void {
    const state = this.steps.get(id);
    if (!state) return;
    switch (kind) {
      case FRAME.output:
        try {
          state.onOutput(payload);
        } catch {
          // the consumer's problem; the step goes on
        }
        return;
      case FRAME.exit: {
        const [code, signal] = payload.toString('ascii').split(' ').map(Number);
        state.exited.resolve({
          code: code === undefined || code < 0 ? null : code,
          signal: signal ? (SIGNAL_NAMES.get(signal) ?? null) : null,
        });
        return;
      }
      case FRAME.closed:
        this.steps.delete(id);
        state.closed.resolve();
        return;
      case FRAME.error:
        this.steps.delete(id);
        failStep(state, new Error(payload.toString('utf8')));
        return;
    }
  }

  private end(why: string): void {
    if (this.endedWith) return;
    const detail = this.stderr.trim();
    this.endedWith = new SandboxEndedError(detail ? `${why}: ${lastLines(detail, 5)}` : why);
    for (const state of this.steps.values()) failStep(state, this.endedWith);
    this.steps.clear();
    this.markEnded();
  }
}

function failStep(state: StepState, err: Error): void {
  state.exited.reject(err);
  state.closed.reject(err);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A caller that awaits only some of them must not turn a failure into an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function lastLines(text: string, n: number): string {
  return text.split('\n').slice(-n).join(' | ');
}

/** NUL cannot cross the supervisor's protocol (nor an exec): such a step is refused up front. */
export function containsNul(request: RunRequest): boolean {
  return [request.script, ...Object.keys(request.env), ...Object.values(request.env)].some((v) =>
    v.includes('\0'),
  );
}
