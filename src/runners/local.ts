import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  createProcessLauncher,
  LauncherDiedError,
  type ProcessExit,
  type ProcessLauncher,
  sharedProcessLauncher,
} from '../core/launcher.js';
import { killRecordedGroup, parsePidFile, waitForGroupGone, writePidFile } from './process-group.js';
import { containsNul, RunSandbox, SandboxEndedError, type SupervisedStep } from './run-sandbox.js';
import {
  bwrapArgs,
  DEFAULT_PATH,
  findOnPath,
  isInside,
  probeBwrap,
  reachableWorkRoot,
  untraversableAncestor,
} from './sandbox.js';
import { buildStepScript } from './script.js';
import { NODE_SUPERVISOR, OWN_PID_NAMESPACE_ARG, PERL_PATH, PERL_SUPERVISOR } from './supervisor.js';
import type { Runner, StepRunRequest, StepRunResult, Workspace } from './types.js';
import { checkoutDir, homeDir, prepareLocalWorkspace, workspaceRoot } from './workspace.js';

export interface LocalRunnerOptions {
  /** Directory holding one `<pipelineId>/` workspace per pipeline run. */
  workRoot: string;
  /**
   * `auto` (default): run steps in the bubblewrap sandbox when `bwrap` is installed and works; else, as
   * an unprivileged user only, unsandboxed after saying so in the step log. `required`: never without
   * the sandbox. `never`: unsandboxed (refused when the platform runs as root).
   */
  bwrap?: 'auto' | 'never' | 'required';
  /** Paths to hide should they lie inside a tree the sandbox shows read-only (the data directory). */
  hidePaths?: string[];
  /** Read-only paths beyond the system trees (toolchains elsewhere), shown at the same paths. */
  readOnlyPaths?: string[];
  /**
   * The host user that sandboxes run as when the platform runs as root (default 65532:65532; it needs
   * no passwd entry). Every step process runs as this uid on the host.
   */
  sandboxUser?: { uid: number; gid: number };
  /** Supervisor implementation (default: Perl when /usr/bin/perl exists, else Node); tests pin both. */
  supervisor?: 'perl' | 'node';
  /** Whether the platform runs as root (default: asks the OS). Tests set it to check both policies. */
  runsAsRoot?: boolean;
  /**
   * How the sandbox, probe and git processes are started. `process` (default): through the
   * platform-wide launcher child; `inline`: forked from this process (for comparison); or a given launcher.
   */
  launcher?: 'process' | 'inline' | ProcessLauncher;
  log?: Logger;
}

export const DEFAULT_SANDBOX_USER = { uid: 65532, gid: 65532 };
/** Time between SIGTERM and SIGKILL when a step is stopped. */
const KILL_GRACE_MS = 2_000;
/** After SIGKILL, how long a step may take to be reported gone before its whole sandbox is killed. */
const SANDBOX_KILL_AFTER_MS = 3_000;
/** setTimeout fires at once beyond 2^31-1 ms; longer step timeouts are capped (about 24 days). */
const MAX_TIMER_MS = 2_147_483_647;

export type Isolation = { kind: 'bwrap'; path: string } | { kind: 'none'; reason: string };

/** What the local runner will do with steps here, and why (for `platform doctor` and the step log). */
export interface IsolationReport {
  /** `sandbox`: bubblewrap; `unsandboxed`: plain processes (said in every step log); `refused`. */
  mode: 'sandbox' | 'unsandboxed' | 'refused';
  reason: string;
}

export interface LocalRunner extends Runner {
  /** Probes bubblewrap (once) and says what steps will get. */
  isolation(): Promise<IsolationReport>;
  /** Where workspaces are made (the configured root, or a reachable one: see reachableWorkRoot). */
  readonly workRoot: string;
}

/**
 * Runs each pipeline run's steps through one supervisor in one bubblewrap sandbox (one more for the
 * steps that ask for `network: none`), each step as `/bin/sh -c` in its own process group. The
 * sandbox's process group is recorded in `<workRoot>/<pipelineId>/pids/` (outside the sandbox's view)
 * so that a restarted platform can kill what a crash left behind.
 */
export function createLocalRunner(options: LocalRunnerOptions): LocalRunner {
  const mode = options.bwrap ?? 'auto';
  const log = options.log;
  const asRoot = options.runsAsRoot ?? process.getuid?.() === 0;
  const sandboxUser = options.sandboxUser ?? DEFAULT_SANDBOX_USER;
  const configuredRoot = path.resolve(options.workRoot);
  let workRoot = configuredRoot;
  if (asRoot && mode !== 'never') {
    const blocked = untraversableAncestor(configuredRoot, sandboxUser.uid, sandboxUser.gid);
    if (blocked) {
      workRoot = reachableWorkRoot(configuredRoot);
      log?.info(
        { configured: configuredRoot, blocked, workRoot },
        'the sandbox user cannot reach the configured workspace directory; workspaces live in a root-owned directory it can pass through',
      );
    }
  }
  const launcher =
    options.launcher === undefined || options.launcher === 'process'
      ? sharedProcessLauncher()
      : options.launcher === 'inline'
        ? createProcessLauncher({ mode: 'inline' })
        : options.launcher;
  const bwrapPath = mode === 'never' ? null : findOnPath('bwrap');
  if (mode === 'required' && !bwrapPath) {
    throw new Error(
      'bubblewrap is required for the local runner (bwrap: required) but bwrap is not on PATH: install it (Debian: apt-get install bubblewrap)',
    );
  }
  const readOnly = [...(options.readOnlyPaths ?? []), process.execPath];
  const hidden = [...(options.hidePaths ?? []), configuredRoot, workRoot];
  /** The host user the sandbox runs as: the unprivileged one when we are root, else ourselves. */
  const spawnUser = asRoot ? sandboxUser : undefined;

  let isolation: Promise<Isolation> | undefined;
  const resolveIsolation = (): Promise<Isolation> => {
    if (mode === 'never')
      return Promise.resolve({ kind: 'none', reason: 'bubblewrap disabled (PLATFORM_RUNNER_BWRAP=never)' });
    if (!bwrapPath) return Promise.resolve({ kind: 'none', reason: 'bubblewrap is not installed' });
    // Probed once: bwrap can be installed yet unusable (user namespaces disabled, seccomp in a container).
    isolation ??= probeBwrap(launcher, bwrapPath, readOnly, spawnUser).then(
      (problem): Isolation => {
        if (problem === null) return { kind: 'bwrap', path: bwrapPath };
        log?.warn({ problem }, 'bubblewrap does not work here');
        return { kind: 'none', reason: `bubblewrap does not work here: ${problem}` };
      },
      (err: unknown) => {
        // Says nothing about bwrap (the launcher died): the next step probes again.
        isolation = undefined;
        throw err;
      },
    );
    return isolation;
  };

  const report = async (): Promise<IsolationReport> => {
    const iso = await resolveIsolation();
    if (iso.kind === 'bwrap') {
      return {
        mode: 'sandbox',
        reason: asRoot
          ? `bubblewrap as host uid ${sandboxUser.uid}, since the platform runs as root`
          : "bubblewrap as the platform's own user",
      };
    }
    if (asRoot) {
      return {
        mode: 'refused',
        reason: `${iso.reason}; steps are never run unsandboxed as root: install bubblewrap (Debian: apt-get install bubblewrap) or run the platform as an unprivileged user`,
      };
    }
    if (mode === 'required')
      return { mode: 'refused', reason: `${iso.reason} and PLATFORM_RUNNER_BWRAP=required` };
    return { mode: 'unsandboxed', reason: iso.reason };
  };

  /** Live sandboxes per pipeline run: `<pipelineId>` → network mode → supervisor. */
  const sandboxes = new Map<string, Map<'host' | 'none', Promise<RunSandbox>>>();

  const closeSandboxes = async (pipelineId: string): Promise<void> => {
    const runs = sandboxes.get(pipelineId);
    if (!runs) return;
    sandboxes.delete(pipelineId);
    await Promise.all(
      [...runs.values()].map((p) =>
        p.then(
          (s) => s.close(),
          () => {},
        ),
      ),
    );
  };

  const sandboxFor = (
    pipelineId: string,
    iso: Isolation,
    root: string,
    cwd: string,
    network: 'host' | 'none',
  ): Promise<RunSandbox> => {
    let runs = sandboxes.get(pipelineId);
    if (!runs) {
      runs = new Map();
      sandboxes.set(pipelineId, runs);
    }
    const existing = runs.get(network);
    if (existing) return existing;
    const started = startSandbox(launcher, iso, {
      supervisor: options.supervisor,
      root,
      cwd,
      network,
      readOnly,
      hidden,
      user: spawnUser,
    }).then(async (sandbox) => {
      await writePidFile(path.join(root, 'pids', `sandbox-${network}.pid`), sandbox.pgid, pipelineId);
      return sandbox;
    });
    runs.set(network, started);
    // A sandbox that failed to start or ended is not reused: the next step starts a new one.
    const forget = () => {
      if (runs.get(network) === started) runs.delete(network);
    };
    started.then((s) => {
      void s.ended.then(forget);
    }, forget);
    return started;
  };

  return {
    kind: 'local',
    workRoot,
    isolation: report,

    async prepareWorkspace(pipelineId, source) {
      // The run's sandbox starts while the repository is cloned (its directories exist by then):
      // its start-up is hidden behind the clone instead of delaying the first step.
      const startEarly = (root: string, dir: string) => {
        void report()
          .then(async (policy) => {
            if (policy.mode === 'refused') return;
            await sandboxFor(pipelineId, await resolveIsolation(), root, dir, 'host');
          })
          .catch(() => {
            // Reported by the first step, which asks for the same sandbox.
          });
      };
      let workspace: Workspace;
      try {
        workspace = await prepareLocalWorkspace(
          workRoot,
          pipelineId,
          source,
          launcher,
          spawnUser,
          startEarly,
        );
      } catch (err) {
        await closeSandboxes(pipelineId);
        throw err;
      }
      return {
        dir: workspace.dir,
        dispose: async () => {
          await closeSandboxes(pipelineId);
          await workspace.dispose();
        },
      };
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
      const policy = await report();
      if (policy.mode === 'refused') {
        return {
          outcome: 'failure',
          exitCode: null,
          error: `not run: ${policy.reason}`,
          durationMs: Date.now() - started,
        };
      }
      const root = workspaceRoot(workRoot, req.pipelineId);
      return runLocalStep(req, root, iso, policy, started, log, (cwd, network) =>
        sandboxFor(req.pipelineId, iso, root, cwd, network),
      );
    },

    async cleanupOrphans(pipelineIds) {
      for (const pipelineId of pipelineIds) {
        await closeSandboxes(pipelineId);
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

/** Perl when installed (starts in ~3 ms), else Node (~40 ms): see supervisor.ts. */
function supervisorCommand(kind: 'perl' | 'node' | undefined): string[] {
  const perl = kind === 'perl' || (kind === undefined && existsSync(PERL_PATH));
  return perl
    ? [PERL_PATH, '-e', PERL_SUPERVISOR]
    : [process.execPath, '--input-type=commonjs', '-e', NODE_SUPERVISOR];
}

interface SandboxSpec {
  supervisor: 'perl' | 'node' | undefined;
  root: string;
  cwd: string;
  network: 'host' | 'none';
  readOnly: string[];
  hidden: string[];
  user: { uid: number; gid: number } | undefined;
}

async function startSandbox(
  launcher: ProcessLauncher,
  iso: Isolation,
  spec: SandboxSpec,
): Promise<RunSandbox> {
  const supervisor = supervisorCommand(spec.supervisor);
  const env = { PATH: DEFAULT_PATH, LANG: 'C.UTF-8' };
  if (iso.kind === 'none') {
    return RunSandbox.start(launcher, {
      file: supervisor[0]!,
      args: supervisor.slice(1),
      cwd: spec.cwd,
      env,
    });
  }
  const writable = [checkoutDir(spec.root), homeDir(spec.root)];
  if (!isInside(spec.cwd, spec.root)) writable.push(spec.cwd);
  if (spec.user) {
    for (const dir of writable) {
      // Only the way there counts: the directory itself may still be root's (chowned after the clone).
      const blocked = untraversableAncestor(path.dirname(dir), spec.user.uid, spec.user.gid);
      if (blocked) {
        throw new Error(
          `the sandbox user (uid ${spec.user.uid}) cannot reach ${dir}: ${blocked} is not searchable by it — allow it (chmod o+x ${blocked}) or set PLATFORM_PIPELINE_WORKSPACE_DIR to a directory outside it`,
        );
      }
    }
  }
  const args = [
    ...bwrapArgs({
      writable,
      readOnly: spec.readOnly,
      hidden: spec.hidden,
      cwd: spec.cwd,
      network: spec.network,
    }),
    ...supervisor,
    OWN_PID_NAMESPACE_ARG,
  ];
  return RunSandbox.start(launcher, {
    file: iso.path,
    args,
    env,
    ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}),
  });
}

async function runLocalStep(
  req: StepRunRequest,
  root: string,
  iso: Isolation,
  policy: IsolationReport,
  started: number,
  log: Logger | undefined,
  sandboxFor: (cwd: string, network: 'host' | 'none') => Promise<RunSandbox>,
): Promise<StepRunResult> {
  const cwd = req.workspace.dir || checkoutDir(root);
  const network = req.network ?? 'host';
  const fail = (error: string): StepRunResult => ({
    outcome: 'failure',
    exitCode: null,
    error,
    durationMs: Date.now() - started,
  });
  if (!statOrNull(cwd)?.isDirectory()) return fail(`workspace directory ${cwd} does not exist`);
  if (network === 'none' && iso.kind !== 'bwrap') {
    return fail('network: none needs the bubblewrap sandbox, which steps do not get here');
  }

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
      policy.mode === 'sandbox'
        ? `[runner] local, sandboxed: ${policy.reason}${network === 'none' ? ', no network' : ''}${image}\n`
        : `[runner] local, NOT sandboxed: ${policy.reason}; this step runs with the platform user's access to this machine${image}\n`,
    ),
  );

  let sandbox: RunSandbox;
  try {
    sandbox = await sandboxFor(cwd, network);
  } catch (err) {
    if (err instanceof LauncherDiedError) {
      log?.error({ detail: err.detail, runId: req.runId }, 'process launcher died');
      return fail(err.message);
    }
    return fail(`could not start the sandbox: ${errorText(err)}`);
  }

  let stopReason: 'timeout' | 'cancelled' | null = null;
  const timers: NodeJS.Timeout[] = [];
  let step: SupervisedStep | undefined;
  const stop = (reason: 'timeout' | 'cancelled') => {
    if (stopReason) return;
    stopReason = reason;
    step?.kill('SIGTERM');
    timers.push(
      setTimeout(() => step?.kill('SIGKILL'), KILL_GRACE_MS),
      // A supervisor that does not answer any more: the whole sandbox goes (the run's other steps fail).
      setTimeout(() => sandbox.destroy(), KILL_GRACE_MS + SANDBOX_KILL_AFTER_MS),
    );
  };
  if (req.timeoutSeconds !== null && req.timeoutSeconds > 0) {
    timers.push(setTimeout(() => stop('timeout'), Math.min(req.timeoutSeconds * 1000, MAX_TIMER_MS)));
  }
  const onAbort = () => stop('cancelled');
  req.signal.addEventListener('abort', onAbort, { once: true });
  if (req.signal.aborted) onAbort();

  const request = {
    script: buildStepScript(req.commands),
    env: { PATH: DEFAULT_PATH, LANG: 'C.UTF-8', ...req.env },
    cwd,
    homeParent: homeDir(root),
    homePrefix: `${fileNameFor(req.stepName)}-`,
  };
  if (containsNul(request)) {
    for (const t of timers) clearTimeout(t);
    req.signal.removeEventListener('abort', onAbort);
    return fail("the step's commands or environment contain a NUL byte");
  }
  step = sandbox.run(request, emit);
  if (stopReason) step.kill('SIGTERM');

  const settle = (end: { exit: ProcessExit } | { error: string }): StepRunResult => {
    for (const t of timers) clearTimeout(t);
    req.signal.removeEventListener('abort', onAbort);
    const durationMs = Date.now() - started;
    if (stopReason === 'timeout') {
      return {
        outcome: 'timeout',
        exitCode: null,
        error: `timed out after ${req.timeoutSeconds}s`,
        durationMs,
      };
    }
    if (stopReason === 'cancelled')
      return { outcome: 'cancelled', exitCode: null, error: 'cancelled', durationMs };
    if ('error' in end) return { outcome: 'failure', exitCode: null, error: end.error, durationMs };
    const { code, signal } = end.exit;
    const result: StepRunResult = { outcome: code === 0 ? 'success' : 'failure', exitCode: code, durationMs };
    if (code === null) result.error = `killed by ${signal ?? 'a signal'}`;
    return result;
  };

  try {
    const exit = await step.exited;
    // Output still in the pipes is delivered before the result (the supervisor gives up after 2 s).
    await step.closed;
    return settle({ exit });
  } catch (err) {
    if (err instanceof LauncherDiedError) {
      log?.error({ detail: err.detail, runId: req.runId }, 'process launcher died');
      sandbox.destroy();
    }
    return settle({
      error: err instanceof SandboxEndedError ? err.message : `could not start the step: ${errorText(err)}`,
    });
  }
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

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
