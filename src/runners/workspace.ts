import { chmod, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { type ProcessLauncher, sharedProcessLauncher } from '../core/launcher.js';
import { GitError, gitEnv } from '../git/index.js';
import type { RepoSource, Workspace } from './types.js';

/** Cloning a large repository can take a while; a hung clone must still end. */
const CLONE_TIMEOUT_MS = 15 * 60_000;
const CHECKOUT_TIMEOUT_MS = 5 * 60_000;

const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA = /^[0-9a-f]{4,64}$/i;

/** Pipeline ids name directories: anything that could climb out of the work root is refused. */
export function workspaceRoot(workRoot: string, pipelineId: string): string {
  if (!SAFE_SEGMENT.test(pipelineId)) {
    throw new Error(`pipeline id ${JSON.stringify(pipelineId)} cannot name a workspace directory`);
  }
  return path.join(path.resolve(workRoot), pipelineId);
}

/** Checkout directory inside a workspace root; HOME dirs and pid files live beside it, outside the checkout. */
export function checkoutDir(root: string): string {
  return path.join(root, 'src');
}

/** Parent of the steps' HOME directories (writable in the sandbox, like the checkout). */
export function homeDir(root: string): string {
  return path.join(root, 'home');
}

/**
 * `<workRoot>/<pipelineId>/src` = a clone of the bare repository with `sha` checked out (detached).
 * A workspace left over from an earlier attempt of the same pipeline is replaced.
 */
export async function prepareLocalWorkspace(
  workRoot: string,
  pipelineId: string,
  source: RepoSource,
  launcher: ProcessLauncher = sharedProcessLauncher(),
  /** Host user the sandbox runs as (platform running as root): the checkout and HOME become theirs. */
  owner?: { uid: number; gid: number },
  /** Called once the (empty) checkout and HOME directories exist, before the clone fills them. */
  directoriesReady?: (root: string, dir: string) => void,
): Promise<Workspace> {
  const root = workspaceRoot(workRoot, pipelineId);
  const dir = checkoutDir(root);
  // Refuse before git sees it: a "sha" starting with "-" would be read as an option.
  if (!SHA.test(source.sha)) throw new Error(`invalid commit sha ${JSON.stringify(source.sha)}`);
  const dispose = () => rm(root, { recursive: true, force: true, maxRetries: 3 });

  await dispose();
  await mkdir(root, { recursive: true });
  try {
    await mkdir(dir);
    await mkdir(homeDir(root), { mode: 0o700 });
    await mkdir(path.join(root, 'pids'), { mode: 0o700 });
    if (owner) await chmod(root, 0o711);
    directoriesReady?.(root, dir);
    // --no-hardlinks: steps may rewrite files in .git (gc, fetch); the platform's repository must not change.
    await launchGit(
      launcher,
      ['clone', '--quiet', '--no-checkout', '--no-hardlinks', '--', source.repoDir, dir],
      { timeoutMs: CLONE_TIMEOUT_MS },
    );
    try {
      await launchGit(launcher, ['checkout', '--quiet', '--detach', source.sha], {
        cwd: dir,
        timeoutMs: CHECKOUT_TIMEOUT_MS,
      });
    } catch (err) {
      // Asked only after a failure (one process less per run): a missing commit gets a clear message.
      if (!(err instanceof GitError)) throw err;
      const exists = await launchGit(launcher, ['cat-file', '-e', `${source.sha}^{commit}`], {
        cwd: dir,
        okExitCodes: [0, 1, 128],
      });
      if (exists !== 0) throw new Error(`commit ${source.sha} not found in ${source.repoDir}`);
      throw err;
    }
    if (owner) {
      // The root directory stays the platform's (pid files live there, outside the sandbox's view);
      // the sandbox user may only pass through it. -h -P: symlinks in the checkout are changed
      // themselves, never followed (a link to /etc/shadow must not hand that file over).
      const chown = await launchTool(
        launcher,
        'chown',
        ['-R', '-h', '-P', `${owner.uid}:${owner.gid}`, '--', dir, homeDir(root)],
        { env: { PATH: '/usr/bin:/bin', LANG: 'C' }, timeoutMs: CHECKOUT_TIMEOUT_MS },
      );
      if (chown.code !== 0) throw new Error(`chown of the workspace failed: ${chown.stderr.trim()}`);
    }
  } catch (err) {
    await dispose();
    if (err instanceof GitError)
      throw new Error(`checkout of ${source.sha} failed: ${err.message}`, { cause: err });
    throw err;
  }
  return { dir, dispose };
}

/**
 * runGit's contract (explicit gitEnv() environment, timeout with process-group kill, stderr turned
 * into a GitError) for the workspace's git commands, started through the launcher so that the
 * platform does not fork itself. No stdin (runGit's empty input) and no stdout: these commands
 * print nothing we use. Resolves the exit code.
 */
async function launchGit(
  launcher: ProcessLauncher,
  args: string[],
  options: { cwd?: string; timeoutMs?: number; okExitCodes?: number[] },
): Promise<number> {
  const { code, stderr } = await launchTool(launcher, 'git', args, { ...options, env: gitEnv() });
  if (code === null || !(options.okExitCodes ?? [0]).includes(code)) throw new GitError(args, code, stderr);
  return code;
}

/** Runs a tool to its end through the launcher (timeout with group kill); the caller judges the exit code. */
async function launchTool(
  launcher: ProcessLauncher,
  file: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number; env: Record<string, string> },
): Promise<{ code: number | null; stderr: string }> {
  const { cwd, timeoutMs = 60_000 } = options;
  const child = await launcher.spawn({ file, args, ...(cwd ? { cwd } : {}), env: options.env });
  let stderr = '';
  child.onOutput((chunk, stream) => {
    if (stream === 'stderr' && stderr.length < 65_536) stderr += chunk.toString('utf8');
  });
  // git spawns helpers (pack-objects, index-pack) into its group.
  const killGroup = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    stderr += `\n(timed out after ${timeoutMs} ms)`;
    killGroup();
  }, timeoutMs);
  let code: number | null;
  try {
    code = (await child.exited).code;
    await child.closed;
  } catch (err) {
    // The launcher died: nothing would ever see this git again.
    killGroup();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { code, stderr };
}
