import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { backoffDelayMs } from '../core/backoff.js';
import type { LaunchedProcess, LaunchOptions, ProcessLauncher } from '../core/launcher.js';
import type { LogLevel, LogSink } from '../core/log-sink.js';
import { bwrapArgs, DEFAULT_PATH, killGroup } from '../runners/index.js';
import type { JsonObject } from '../store/schema.js';

/** A `LocalProcess` manifest (replicas 1; the port is always a fresh one the deployer picks). */
export const LocalProcessSchema = z
  .object({
    kind: z.literal('LocalProcess'),
    name: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/)
      .default('app'),
    command: z.string().min(1).max(4096),
    args: z
      .array(z.union([z.string(), z.number()]).transform(String))
      .max(200)
      .default([]),
    env: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
        z.union([z.string(), z.number(), z.boolean()]).transform(String),
      )
      .default({}),
    /** HTTP path answered with 2xx when the process is ready (default `/`). */
    health_path: z.string().startsWith('/').max(2000).default('/'),
    readiness_timeout_seconds: z.number().int().min(1).max(600).default(30),
    /** How long in-flight requests of the old version may take to finish before it is stopped. */
    drain_seconds: z.number().int().min(0).max(120).default(10),
  })
  .strict();
export type LocalProcessSpec = z.output<typeof LocalProcessSchema>;

/** How supervised processes are started: in the step sandbox (bwrap) or, unprivileged only, plainly. */
export interface ProcessSandbox {
  /** The bwrap binary, or null to run unsandboxed (never as root: the caller refuses that). */
  bwrap: string | null;
  user: { uid: number; gid: number } | undefined;
  hidden: string[];
}

export interface SuperviseOptions {
  launcher: ProcessLauncher;
  sandbox: ProcessSandbox;
  releaseDir: string;
  pidFile: string;
  spec: LocalProcessSpec;
  port: number;
  logs: LogSink | undefined;
  /** `service.name` of the process's log entries: `<project>-<env>`. */
  service: string;
  projectId: string;
  attributes: Record<string, string>;
  log: Logger;
}

const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const MAX_LINE = 8192;

/** The launch of one process in the sandbox: `bwrap … <command> <args>` with the release dir writable. */
export function sandboxedLaunch(
  sandbox: ProcessSandbox,
  dir: string,
  file: string,
  args: string[],
  env: Record<string, string>,
): LaunchOptions {
  const base = { env, ...(sandbox.user ? { uid: sandbox.user.uid, gid: sandbox.user.gid } : {}) };
  if (!sandbox.bwrap) return { ...base, file, args, cwd: dir };
  const view = bwrapArgs({
    writable: [dir],
    readOnly: [process.execPath],
    hidden: sandbox.hidden,
    cwd: dir,
    network: 'host',
  });
  return { ...base, file: sandbox.bwrap, args: [...view, file, ...args], cwd: '/' };
}

/**
 * One supervised process: restarted with exponential backoff when it exits on its own, its output
 * written line by line to the log sink, its process group recorded in a pid file (outside the
 * sandbox's view) so that leftovers of a crashed platform can be found and killed.
 */
export class SupervisedProcess {
  private child: LaunchedProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Exits since the last start that stayed up (the health wait gives up on a crash loop). */
  crashes = 0;
  lastExit: string | null = null;
  /** The last lines it printed (failure messages quote them). */
  readonly tail: string[] = [];
  private partial = { stdout: '', stderr: '' };

  constructor(private readonly o: SuperviseOptions) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async start(): Promise<void> {
    if (this.stopping) return;
    const { spec, port } = this.o;
    const env: Record<string, string> = {
      ...spec.env,
      PATH: `${DEFAULT_PATH}:${path.dirname(process.execPath)}`,
      HOME: this.o.releaseDir,
      PORT: String(port),
    };
    const args = spec.args.map((a) => a.replaceAll('$PORT', String(port)));
    const child = await this.o.launcher.spawn(
      sandboxedLaunch(this.o.sandbox, this.o.releaseDir, spec.command, args, env),
    );
    this.child = child;
    await writeFile(
      this.o.pidFile,
      `${JSON.stringify({ pgid: child.pid, startTime: null, runId: path.basename(this.o.releaseDir) })}\n`,
      {
        mode: 0o600,
      },
    ).catch(() => {});
    child.onOutput((chunk, stream) => this.output(chunk.toString('utf8'), stream));
    const startedAt = Date.now();
    child.exited.then(
      (exit) => this.exited(`exit code ${exit.code ?? exit.signal}`, startedAt),
      (err: unknown) => this.exited((err as Error).message, startedAt),
    );
  }

  private exited(how: string, startedAt: number): void {
    this.flush();
    this.child = null;
    this.lastExit = how;
    if (this.stopping) return;
    this.crashes++;
    // A run that stayed up for a minute resets the backoff.
    if (Date.now() - startedAt > 60_000) this.restarts = 0;
    this.restarts++;
    const delay = backoffDelayMs(this.restarts, RESTART_BASE_MS, RESTART_MAX_MS);
    this.write('warn', `process exited (${how}); restarting in ${Math.round(delay)} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.start().catch((err: unknown) => {
        this.write('error', `restart failed: ${(err as Error).message}`);
        this.exited(`restart failed: ${(err as Error).message}`, Date.now());
      });
    }, delay);
    this.restartTimer.unref();
  }

  private output(text: string, stream: 'stdout' | 'stderr'): void {
    const all = this.partial[stream] + text;
    const lines = all.split('\n');
    this.partial[stream] = (lines.pop() ?? '').slice(-MAX_LINE);
    const level: LogLevel = stream === 'stderr' ? 'warn' : 'info';
    const entries = lines.filter((l) => l.length > 0).map((l) => l.slice(0, MAX_LINE));
    if (entries.length > 0) this.writeMany(level, entries, stream);
  }

  private flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.partial[stream];
      this.partial[stream] = '';
      if (rest) this.writeMany(stream === 'stderr' ? 'warn' : 'info', [rest], stream);
    }
  }

  private write(level: LogLevel, body: string): void {
    this.writeMany(level, [body], 'deployer');
  }

  private writeMany(level: LogLevel, bodies: string[], stream: string): void {
    if (stream !== 'deployer') {
      this.tail.push(...bodies.map((b) => b.slice(0, 300)));
      if (this.tail.length > 20) this.tail.splice(0, this.tail.length - 20);
    }
    const sink = this.o.logs;
    if (!sink) {
      for (const body of bodies) this.o.log.debug({ service: this.o.service, stream }, body);
      return;
    }
    sink
      .write(
        bodies.map((body) => ({
          level,
          service: this.o.service,
          body,
          projectId: this.o.projectId,
          attributes: { ...this.o.attributes, 'log.stream': stream },
        })),
      )
      .catch((err: unknown) => this.o.log.warn({ err }, 'writing deployed process logs failed'));
  }

  /** Stops it: SIGTERM to the group, SIGKILL after the grace period; no restart. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    killGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), graceMs);
    await child.exited.catch(() => {});
    clearTimeout(timer);
    // Whatever it left in its group (bwrap's own session) goes too.
    killGroup(child.pid, 'SIGKILL');
  }
}

/** Waits until GET <health path> answers 2xx, the process crash-loops, or the timeout passes. */
export async function waitHealthy(
  port: number,
  healthPath: string,
  timeoutMs: number,
  proc: SupervisedProcess,
): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const status = await probe(port, healthPath, Math.min(2_000, Math.max(100, deadline - Date.now())));
    if (typeof status === 'number' && status >= 200 && status < 300) return null;
    last = typeof status === 'number' ? `HTTP ${status}` : status;
    if (proc.crashes >= 5) return `the process keeps exiting (${proc.lastExit})${lastOutput(proc)}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  return `health check failed after ${Math.round(timeoutMs / 1000)} s (last: ${last})`;
}

function lastOutput(proc: SupervisedProcess): string {
  const lines = proc.tail.slice(-3);
  return lines.length > 0 ? `: ${lines.join(' | ')}` : '';
}

function probe(port: number, healthPath: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: healthPath, method: 'GET', timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
    req.end();
  });
}

/** Reads the `LocalProcess` manifests out of rendered objects (exactly one). */
export function localProcessOf(objects: JsonObject[]): LocalProcessSpec {
  if (objects.length !== 1)
    throw new Error(
      `the local target runs exactly one LocalProcess per deployment (found ${objects.length})`,
    );
  const parsed = LocalProcessSchema.safeParse(objects[0]);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`LocalProcess manifest: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
