import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * The data-directory lock: `<data_dir>/platform.lock` holds the pid and command of the process that
 * owns the directory (a `serve`, or a CLI command that started the embedded database itself). It is
 * taken with O_EXCL; a lock whose process is gone (SIGKILL, power loss) is stale and taken over.
 */
export interface LockHolder {
  pid: number;
  command: string;
  started: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    super(
      `the data directory ${dataDir} is in use by \`platform ${holder.command}\` (pid ${holder.pid}, since ${holder.started}); stop it first or use another PLATFORM_DATA_DIR`,
    );
  }
}

export interface DataDirLock {
  readonly file: string;
  release(): void;
}

export function lockFile(dataDir: string): string {
  return path.join(dataDir, 'platform.lock');
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live holder of the lock, if any (a stale lock file counts as none). */
export function lockHolder(dataDir: string): LockHolder | undefined {
  let holder: LockHolder;
  try {
    holder = JSON.parse(readFileSync(lockFile(dataDir), 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
  return Number.isInteger(holder.pid) && alive(holder.pid) ? holder : undefined;
}

export function acquireDataDirLock(dataDir: string, command: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const file = lockFile(dataDir);
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(dataDir);
      if (holder) throw new DataDirLockedError(dataDir, holder);
      // Stale. Renaming it away (instead of unlinking) keeps two processes that both found it stale
      // from both succeeding: only one rename wins, the other retries and meets the new lock.
      const moved = `${file}.stale-${process.pid}`;
      try {
        renameSync(file, moved);
        // Between our check and the rename another process may have taken it over: put it back.
        const was = JSON.parse(readFileSync(moved, 'utf8')) as LockHolder;
        if (Number.isInteger(was.pid) && alive(was.pid)) renameSync(moved, file);
      } catch {
        // someone else took it over first
      }
      rmSync(moved, { force: true });
      continue;
    }
    const holder: LockHolder = { pid: process.pid, command, started: new Date().toISOString() };
    try {
      writeSync(fd, `${JSON.stringify(holder)}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.off('exit', release);
      try {
        const current = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
        if (current.pid === process.pid) rmSync(file, { force: true });
      } catch {
        // already gone
      }
    };
    process.on('exit', release);
    return { file, release };
  }
  throw new Error(`cannot take the data-directory lock ${file}`);
}
