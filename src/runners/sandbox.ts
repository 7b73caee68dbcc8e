import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  lstatSync,
  mkdirSync,
  readlinkSync,
  realpathSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { type LaunchedProcess, LauncherDiedError, type ProcessLauncher } from '../core/launcher.js';
import { killGroup } from './process-group.js';

/**
 * The bubblewrap sandbox of a pipeline run. It holds no privilege whatever user the platform runs as:
 * a user namespace (started as an unprivileged host uid when the platform is root, so no step process
 * ever runs as host uid 0), every capability dropped, no new privileges (bubblewrap always sets it),
 * no nested user namespaces, its own pid, ipc, uts and cgroup namespaces, a new session, and it dies
 * with its parent. The view is built from an allow-list — system directories read-only, a private
 * /dev, /proc and /tmp, and the run's own checkout and HOME directories read-write — so the data
 * directory, repositories, other workspaces, the object store and the master key are not in it at
 * all (and without capabilities no mount can be changed).
 */

/** System trees that steps see read-only (those missing on this host are left out). */
export const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt'];

export interface SandboxView {
  /** Read-write directories (the run's checkout and HOME parent), mounted at the same paths. */
  writable: string[];
  /** Extra read-only paths (toolchains outside the system trees), mounted at the same paths. */
  readOnly?: string[];
  /** Paths to hide should they lie inside a mounted tree (a directory → empty tmpfs, a file → empty). */
  hidden?: string[];
  /** Working directory of the sandbox's first process. */
  cwd: string;
  /** `none`: own network namespace with loopback only. */
  network: 'host' | 'none';
}

export function bwrapArgs(view: SandboxView): string[] {
  const args = [
    '--unshare-user',
    '--disable-userns',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    ...(view.network === 'none' ? ['--unshare-net'] : []),
    '--hostname',
    'platform-step',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
  ];
  const mounted: string[] = [];
  const bindReadOnly = (p: string) => {
    const info = lstatOrNull(p);
    if (!info) return;
    if (info.isSymbolicLink()) {
      // Merged-/usr hosts: /bin → usr/bin stays a symlink inside.
      args.push('--symlink', readlinkSync(p), p);
      return;
    }
    args.push('--ro-bind', p, p);
    mounted.push(p);
  };
  for (const p of SYSTEM_PATHS) bindReadOnly(p);
  // /etc/resolv.conf is often a symlink into /run (systemd-resolved): its target is exposed read-only.
  const resolv = realpathOrNull('/etc/resolv.conf');
  if (resolv && !mounted.some((m) => isInside(resolv, m))) {
    args.push('--ro-bind', resolv, resolv);
    mounted.push(resolv);
  }
  args.push('--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp');
  // Extra read-only paths after the private /tmp: one under /tmp (a checkout there) stays visible.
  for (const p of view.readOnly ?? []) bindReadOnly(path.resolve(p));
  for (const hidden of (view.hidden ?? []).map((h) => path.resolve(h))) {
    if (!mounted.some((m) => isInside(hidden, m))) continue;
    const info = statOrNull(hidden);
    if (!info) continue;
    if (info.isDirectory()) args.push('--tmpfs', hidden);
    else args.push('--ro-bind', '/dev/null', hidden);
  }
  for (const dir of view.writable) args.push('--bind', dir, dir);
  // The sandbox's root is a tmpfs of its own: read-only too, so the only writable places are the
  // run's directories and its private /tmp.
  args.push('--remount-ro', '/', '--chdir', view.cwd, '--');
  return args;
}

/**
 * The first directory on the way to `target` that `uid`/`gid` cannot pass through (bubblewrap, started
 * as that user, resolves its mount sources with that user's permissions), or null. Directories that do
 * not exist yet are fine: they are created searchable (mode 0755 under the usual umask).
 */
export function untraversableAncestor(target: string, uid: number, gid: number): string | null {
  let dir = path.resolve(target);
  const chain: string[] = [];
  for (;;) {
    chain.unshift(dir);
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (const d of chain) {
    const info = statOrNull(d);
    if (!info) return null;
    const bit = info.uid === uid ? 0o100 : info.gid === gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return d;
  }
  return null;
}

export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function realpathOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/**
 * A work root the sandbox user can reach when the configured one sits below a directory it cannot
 * pass through (a data directory under /root, a 0700 temporary directory): `/var/tmp` (or `/tmp`)
 * `/platform-runs-<hash of the configured root>`, owned by root and mode 0711. One that exists but is
 * not exactly that (a symlink, another owner, writable by others) is refused: another local user could
 * have planted it.
 */
export function reachableWorkRoot(configured: string): string {
  const name = `platform-runs-${createHash('sha256').update(configured).digest('hex').slice(0, 12)}`;
  const base = ['/var/tmp', '/tmp'].find((b) => statOrNull(b)?.isDirectory());
  if (!base) throw new Error('neither /var/tmp nor /tmp exists for sandbox workspaces');
  const dir = path.join(base, name);
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const info = lstatSync(dir);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new Error(
      `${dir} exists but is not a directory owned by root and writable only by it: remove it, or set PLATFORM_PIPELINE_WORKSPACE_DIR`,
    );
  }
  chmodSync(dir, 0o711);
  return dir;
}

/** The PATH of everything the runner starts (bwrap, the supervisor, steps). */
export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const BWRAP_PROBE_TIMEOUT_MS = 10_000;

/** Resolves null when bwrap can set up a sandbox like the one steps get, else the reason it cannot. */
export async function probeBwrap(
  launcher: ProcessLauncher,
  bwrap: string,
  readOnly: string[],
  user: { uid: number; gid: number } | undefined,
): Promise<string | null> {
  let child: LaunchedProcess;
  try {
    child = await launcher.spawn({
      file: bwrap,
      args: [...bwrapArgs({ writable: [], readOnly, cwd: '/', network: 'none' }), '/bin/true'],
      env: { PATH: DEFAULT_PATH },
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
  } catch (err) {
    if (err instanceof LauncherDiedError) throw err;
    return err instanceof Error ? err.message : String(err);
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

export function findOnPath(name: string): string | null {
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
