import type { Dirent } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

/** A quarantine nobody has written to for this long belongs to no push in progress. */
export const STALE_INCOMING_MS = 15 * 60_000;
const INCOMING_PREFIX = 'tmp_objdir-incoming-';

/**
 * git receive-pack receives a push into `objects/tmp_objdir-incoming-*` (the quarantine the
 * pre-receive hook inspects) and removes it when it exits, but not when it is killed (SIGKILL, OOM,
 * the host going down): that directory then stays for ever, with the pushed pack in it. Called at
 * start-up over `<data_dir>/repos/<owner>/<name>.git`. Repositories may be shared with instances that
 * are receiving pushes right now, so only quarantines idle for `idleMs` (newest mtime of the
 * directory and everything in it: a pack being received is written continuously) are removed.
 */
export async function removeStaleIncoming(
  reposRoot: string,
  log: Logger,
  idleMs: number = STALE_INCOMING_MS,
  now: number = Date.now(),
): Promise<string[]> {
  const removed: string[] = [];
  for (const owner of await dirs(reposRoot)) {
    for (const repo of await dirs(path.join(reposRoot, owner))) {
      if (!repo.endsWith('.git')) continue;
      const objects = path.join(reposRoot, owner, repo, 'objects');
      for (const name of await dirs(objects)) {
        if (!name.startsWith(INCOMING_PREFIX)) continue;
        const dir = path.join(objects, name);
        try {
          if (now - (await newestMtime(dir)) < idleMs) continue;
          await rm(dir, { recursive: true, force: true });
          removed.push(dir);
        } catch (err) {
          log.warn({ err, dir }, 'could not remove a stale push quarantine');
        }
      }
    }
  }
  if (removed.length > 0) log.info({ removed: removed.length }, 'stale push quarantines removed');
  return removed;
}

async function dirs(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

async function newestMtime(dir: string): Promise<number> {
  let newest = (await stat(dir)).mtimeMs;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    const mtime = entry.isDirectory() ? await newestMtime(p) : (await stat(p)).mtimeMs;
    if (mtime > newest) newest = mtime;
  }
  return newest;
}
