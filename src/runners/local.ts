import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  createProcessLauncher,
  type LaunchedProcess,
  LauncherDiedError,
  type ProcessExit,
  type ProcessLauncher,
  sharedProcessLauncher,
} from '../core/launcher.js';
import { buildStepScript } from './script.js';
import type { Runner, StepRunRequest, StepRunResult } from './types.js';
import { checkoutDir, prepareLocalWorkspace, workspaceRoot } from './workspace.js';

export interface LocalRunnerOptions {
  /** Directory holding one `<pipelineId>/` workspace per pipeline run. */
  workRoot: string;
  /**
   * `auto` (default): isolate with bubblewrap when `bwrap` is on PATH and works; `required`: refuse to
   * run steps without it; `never`: plain child processes.
   */
  bwrap?: 'auto' | 'never' | 'required';
  /**
   * Paths made invisible inside bubblewrap (a directory becomes an empty tmpfs, a file reads as empty),
   * e.g. the platform's data directory with its database and keys. The rest of the host is read-only.
   */
  hidePaths?: string[];
  /**
   * How step, git and probe processes are started. `process` (default): through the platform-wide
   * launcher child, so that forks happen in a small process (a fork of the platform costs ~25 ms
   * with a 600 MB heap); `inline`: forked from this process (for comparison); or a given launcher.
   */
  launcher?: 'process' | 'inline' | ProcessLauncher;
  log?: Logger;
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
/** Time between SIGTERM and SIGKILL when a step is stopped. */
const KILL_GRACE_MS = 2_000;
/** After the shell exits, how long to wait for pipes held by escaped processes before giving up on them. */
const DRAIN_TIMEOUT_MS = 2_000;
const BWRAP_PROBE_TIMEOUT_MS = 10_000;
/** setTimeout fires at once beyond 2^31-1 ms; longer step timeouts are capped (about 24 days). */
const MAX_TIMER_MS = 2_147_483_647;

type Isolation = { kind: 'bwrap'; path: string } | { kind: 'none'; reason: string };

/**
 * Runs each step as `/bin/sh -c` in its own process group, inside bubblewrap when available. Each
 * running group is recorded in `<workRoot>/<pipelineId>/pids/<step>.pid` so a restarted platform can
 * find and kill what a crash left behind.
 */
export function createLocalRunner(options: LocalRunnerOptions): Runner {
  const workRoot = path.resolve(options.workRoot);
  const mode = options.bwrap ?? 'auto';
  const log = options.log;
  const launcher =
    options.launcher === undefined || options.launcher === 'process'
      ? sharedProcessLauncher()
      : options.launcher === 'inline'
        ? createProcessLauncher({ mode: 'inline' })
        : options.launcher;
  const bwrapPath = mode === 'never' ? null : findOnPath('bwrap');
  if (mode === 'required' && !bwrapPath) {
    throw new Error('bubblewrap is required for the local runner (bwrap: required) but bwrap is not on PATH');
  }

  let isolation: Promise<Isolation> | undefined;
  const resolveIsolation = (): Promise<Isolation> => {
    if (mode === 'never') return Promise.resolve({ kind: 'none', reason: 'bubblewrap disabled' });
    if (!bwrapPath) return Promise.resolve({ kind: 'none', reason: 'bubblewrap not installed' });
    // Probed once: bwrap can be installed yet unusable (user namespaces disabled, seccomp in a container).
    isolation ??= probeBwrap(launcher, bwrapPath).then(
      (problem): Isolation => {
        if (problem === null) return { kind: 'bwrap', path: bwrapPath };
        log?.warn({ problem }, 'bubblewrap does not work here; local steps run without isolation');
        return { kind: 'none', reason: `bubblewrap unusable: ${problem}` };
      },
      (err: unknown) => {
        // Says nothing about bwrap (the launcher died): the next step probes again.
        isolation = undefined;
        throw err;
      },
    );
    return isolation;
  };

  return {
    kind: 'local',

    prepareWorkspace(pipelineId, source) {
      return prepareLocalWorkspace(workRoot, pipelineId, source, launcher);
    },

    async runStep(req) {
      const started = Date.now();
      if (req.signal.aborted) return { outcome: 'cancelled', exitCode: null, durationMs: 0 };
      let iso: Isolation;
      try {
        iso = await resolveIsolation();
      } catch (err) {
        log?.error({ detail: (err as LauncherDiedError).detail, runId: req.runId }, 'process launcher died');
        return {
          outcome: 'failure',
          exitCode: null,
          error: errorText(err),
          durationMs: Date.now() - started,
        };
      }
      if (iso.kind === 'none' && mode === 'required') {
        return {
          outcome: 'failure',
          exitCode: null,
          error: `bubblewrap is required but ${iso.reason}`,
          durationMs: Date.now() - started,
        };
      }
      return runLocalStep(launcher, workRoot, req, iso, options.hidePaths ?? [], log, started);
    },

    async cleanupOrphans(pipelineIds) {
      for (const pipelineId of pipelineIds) {
        const root = workspaceRoot(workRoot, pipelineId);
        const pidDir = path.join(root, 'pids');
        const files = await readdir(pidDir).catch(() => [] as string[]);
        for (const file of files) {
          if (!file.endsWith('.pid')) continue;
          const record = parsePidFile(await readFile(path.join(pidDir, file), 'utf8').catch(() => ''));
          if (!record) continue;
          if (killRecordedGroup(record)) {
            log?.info(
              { pipelineId, pgid: record.pgid, runId: record.runId },
              'killed orphaned step processes',
            );
            await waitForGroupGone(record.pgid, 5_000);
          }
        }
        await rm(root, { recursive: true, force: true, maxRetries: 3 });
      }
    },
  };
}

async function runLocalStep(
  launcher: ProcessLauncher,
  workRoot: string,
  req: StepRunRequest,
  iso: Isolation,
  hidePaths: string[],
  log: Logger | undefined,
  started: number,
): Promise<StepRunResult> {
  const root = workspaceRoot(workRoot, req.pipelineId);
  const cwd = req.workspace.dir || checkoutDir(root);
  const stepFile = fileNameFor(req.stepName);
  const pidDir = path.join(root, 'pids');
  const homeParent = path.join(root, 'home');
  // Checked first: the directories below would otherwise re-create a disposed workspace.
  if (!statOrNull(cwd)?.isDirectory()) {
    return {
      outcome: 'failure',
      exitCode: null,
      error: `workspace directory ${cwd} does not exist`,
      durationMs: Date.now() - started,
    };
  }
  // Synchronous on purpose: three metadata calls of microseconds each, where the promise versions
  // wait for a thread-pool round trip apiece (~0.5 ms each with the database busy on the main thread).
  mkdirSync(pidDir, { recursive: true });
  mkdirSync(homeParent, { recursive: true });
  const home = mkdtempSync(path.join(homeParent, `${stepFile}-`));

  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: home, LANG: 'C.UTF-8', ...req.env };
  const script = buildStepScript(req.commands);

  const emit = (chunk: Buffer) => {
    try {
      req.onOutput(chunk);
    } catch (err) {
      log?.error({ err, runId: req.runId }, 'step output consumer failed');
    }
  };
  const image = req.image ? `; image ${req.image} noted but not used` : '';
  emit(
    Buffer.from(
      iso.kind === 'bwrap'
        ? `[runner] local, isolated with bubblewrap${image}\n`
        : `[runner] local, not isolated (${iso.reason})${image}\n`,
    ),
  );

  let command: string;
  let args: string[];
  if (iso.kind === 'bwrap') {
    command = iso.path;
    args = [...bwrapArgs(workRoot, root, cwd, hidePaths), '/bin/sh', '-c', script];
  } else {
    command = '/bin/sh';
    args = ['-c', script];
  }

  const pidFile = path.join(pidDir, `${stepFile}.pid`);
  // Known once the launcher has started the shell; a stop requested before then is applied at that point.
  let pgid: number | undefined;
  let stopReason: 'timeout' | 'cancelled' | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  let exited = false;

  const stop = (reason: 'timeout' | 'cancelled') => {
    if (stopReason || exited) return;
    stopReason = reason;
    if (pgid !== undefined) killGroup(pgid, 'SIGTERM');
    killTimer = setTimeout(() => {
      if (pgid !== undefined) killGroup(pgid, 'SIGKILL');
    }, KILL_GRACE_MS);
  };
  const timeoutTimer =
    req.timeoutSeconds !== null && req.timeoutSeconds > 0
      ? setTimeout(() => stop('timeout'), Math.min(req.timeoutSeconds * 1000, MAX_TIMER_MS))
      : undefined;
  const onAbort = () => stop('cancelled');
  req.signal.addEventListener('abort', onAbort, { once: true });
  // An abort while the workspace directories were being prepared fired before the listener existed.
  if (req.signal.aborted) onAbort();

  const settle = (
    end: { exit: ProcessExit } | { startFailure: string } | { launcherDied: string },
  ): StepRunResult => {
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    req.signal.removeEventListener('abort', onAbort);
    try {
      unlinkSync(pidFile);
    } catch {
      // never written, or already gone (workspace disposed or cleaned up meanwhile)
    }
    const durationMs = Date.now() - started;
    if ('startFailure' in end) {
      return { outcome: 'failure', exitCode: null, error: end.startFailure, durationMs };
    }
    if (stopReason === 'timeout') {
      return {
        outcome: 'timeout',
        exitCode: null,
        error: `timed out after ${req.timeoutSeconds}s`,
        durationMs,
      };
    }
    if (stopReason === 'cancelled') {
      return { outcome: 'cancelled', exitCode: null, error: 'cancelled', durationMs };
    }
    if ('launcherDied' in end) {
      return { outcome: 'failure', exitCode: null, error: end.launcherDied, durationMs };
    }
    const { code, signal } = end.exit;
    const result: StepRunResult = { outcome: code === 0 ? 'success' : 'failure', exitCode: code, durationMs };
    if (code === null) result.error = `killed by ${signal ?? 'a signal'}`;
    return result;
  };

  let child: LaunchedProcess;
  try {
    child = await launcher.spawn({ file: command, args, cwd, env });
  } catch (err) {
    if (err instanceof LauncherDiedError) {
      log?.error({ detail: err.detail, runId: req.runId }, 'process launcher died');
      return settle({ launcherDied: err.message });
    }
    return settle({ startFailure: `could not start the step: ${errorText(err)}` });
  }
  pgid = child.pid;
  writePidFile(pidFile, pgid, req.runId);
  if (stopReason) killGroup(pgid, 'SIGTERM');
  child.onOutput(emit);

  let exit: ProcessExit;
  try {
    exit = await child.exited;
  } catch (err) {
    // Nothing would see this group end any more: it ends now (bubblewrap already went with the launcher).
    killGroup(pgid, 'SIGKILL');
    log?.error({ detail: (err as LauncherDiedError).detail, runId: req.runId }, 'process launcher died');
    return settle({ launcherDied: errorText(err) });
  }
  exited = true;
  // Background children (`server &`) must not outlive their step.
  killGroup(pgid, 'SIGKILL');
  // Output still in the pipes is delivered before the result; a process that left the group (setsid)
  // and keeps a pipe open is not waited for forever.
  let drain: NodeJS.Timeout | undefined;
  await Promise.race([
    child.closed.catch(() => {}),
    new Promise<void>((resolve) => {
      drain = setTimeout(() => {
        child.release();
        resolve();
      }, DRAIN_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(drain);
  return settle({ exit });
}

function bwrapArgs(workRoot: string, root: string, cwd: string, hidePaths: string[]): string[] {
  const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'];
  // Later mounts go on top of earlier ones: hide first, then expose this pipeline's workspace only.
  for (const hidden of [...hidePaths.map((p) => path.resolve(p)), workRoot]) {
    const stat = statOrNull(hidden);
    if (!stat) continue;
    if (stat.isDirectory()) args.push('--tmpfs', hidden);
    else args.push('--ro-bind', '/dev/null', hidden);
  }
  args.push('--bind', root, root);
  if (!isInside(cwd, root)) args.push('--bind', cwd, cwd);
  args.push('--unshare-pid', '--unshare-ipc', '--die-with-parent', '--chdir', cwd, '--');
  return args;
}

/** Resolves null when bwrap can set up a sandbox like the one steps get, else the reason it cannot. */
async function probeBwrap(launcher: ProcessLauncher, bwrap: string): Promise<string | null> {
  let child: LaunchedProcess;
  try {
    child = await launcher.spawn({
      file: bwrap,
      args: [
        '--ro-bind',
        '/',
        '/',
        '--dev',
        '/dev',
        '--proc',
        '/proc',
        '--tmpfs',
        '/tmp',
        '--unshare-pid',
        '--unshare-ipc',
        '--die-with-parent',
        '--',
        '/bin/true',
      ],
      env: { PATH: DEFAULT_PATH },
    });
  } catch (err) {
    if (err instanceof LauncherDiedError) throw err;
    return errorText(err);
  }
  let stderr = '';
  child.onOutput((chunk, stream) => {
    if (stream === 'stderr' && stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), BWRAP_PROBE_TIMEOUT_MS);
  try {
    const { code, signal } = await child.exited;
    await child.closed;
    if (code === 0) return null;
    return stderr.trim() || `exited with ${code ?? signal}`;
  } catch (err) {
    // Only a launcher that died rejects here.
    killGroup(child.pid, 'SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

interface PidRecord {
  pgid: number;
  /** Leader start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a recycled pid apart. */
  startTime: string | null;
  runId: string;
}

function writePidFile(file: string, pgid: number, runId: string): void {
  const record: PidRecord = { pgid, startTime: readProcStat(pgid)?.startTime ?? null, runId };
  try {
    writeFileSync(file, `${JSON.stringify(record)}\n`);
  } catch {
    // The workspace was removed under the step; there is nothing left to clean up after a crash either.
  }
}

function parsePidFile(text: string): PidRecord | null {
  try {
    const value = JSON.parse(text) as Partial<PidRecord>;
    if (typeof value.pgid !== 'number' || !Number.isInteger(value.pgid) || value.pgid <= 1) return null;
    return {
      pgid: value.pgid,
      startTime: typeof value.startTime === 'string' ? value.startTime : null,
      runId: typeof value.runId === 'string' ? value.runId : '',
    };
  } catch {
    return null;
  }
}

interface ProcStat {
  pgrp: number;
  session: number;
  startTime: string;
}

function readProcStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const session = Number(fields[3]);
    const startTime = fields[19];
    if (!Number.isInteger(pgrp) || !Number.isInteger(session) || !startTime) return null;
    return { pgrp, session, startTime };
  } catch {
    return null;
  }
}

/**
 * Kills a recorded group only when it is still ours: the leader is alive, leads its own group and
 * session (our steps start with setsid) and started when recorded; or, the leader having exited, some
 * process is still in that group and session and started no earlier than the leader — a pid cannot be
 * reused while a group with that id exists, so such members can only be leftovers of the step.
 */
function killRecordedGroup(record: PidRecord): boolean {
  const { pgid } = record;
  const leader = readProcStat(pgid);
  if (leader) {
    if (leader.pgrp !== pgid || leader.session !== pgid) return false;
    if (record.startTime !== null && leader.startTime !== record.startTime) return false;
    killGroup(pgid, 'SIGKILL');
    return true;
  }
  const members = groupMembers(pgid).filter(
    (m) =>
      m.session === pgid && (record.startTime === null || BigInt(m.startTime) >= BigInt(record.startTime)),
  );
  if (members.length === 0) return false;
  killGroup(pgid, 'SIGKILL');
  return true;
}

function groupMembers(pgid: number): ProcStat[] {
  const members: ProcStat[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return members;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat && stat.pgrp === pgid) members.push(stat);
  }
  return members;
}

async function waitForGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? DEFAULT_PATH).split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Step names become file names; encoding keeps distinct names distinct and `/` out. */
function fileNameFor(stepName: string): string {
  const encoded = encodeURIComponent(stepName).replaceAll('*', '%2A');
  if (encoded.length <= 150) return encoded;
  return `${encoded.slice(0, 120)}~${createHash('sha256').update(stepName).digest('hex').slice(0, 16)}`;
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
