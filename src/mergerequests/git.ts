import { runGit } from '../git/index.js';

/**
 * Git operations of merge requests, all on the bare repository. Merges are computed with
 * `git merge-tree --write-tree` — git's merge machinery run in memory against the object database,
 * which is what a temporary worktree would be used for, without a checkout to create, clean up or
 * leave behind on a crash — and published with `git update-ref <ref> <new> <old>`, a
 * compare-and-swap: it fails when the target moved since it was read.
 */

export type MergeStrategy = 'merge' | 'squash' | 'fast_forward';

export interface Identity {
  name: string;
  email: string;
}

export interface MergeAttempt {
  /** Tip of the target the merge was computed against (the CAS old value). */
  targetSha: string;
  sourceSha: string;
  /** The commit the target ref should point to. */
  newSha: string;
}

export class MergeConflictError extends Error {
  constructor(readonly files: string[]) {
    super(`merge conflicts in ${files.length} file(s)`);
  }
}

/** The target cannot be fast-forwarded to the source (it has commits the source lacks). */
export class NotFastForwardError extends Error {}

/** Nothing to merge: the source's changes are already in the target. */
export class NothingToMergeError extends Error {}

const refOf = (branch: string) => `refs/heads/${branch}`;

export async function branchSha(dir: string, branch: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '--quiet', `${refOf(branch)}^{commit}`], {
    cwd: dir,
    okExitCodes: [0, 1],
  });
  return r.exitCode === 0 ? r.stdout.toString('utf8').trim() : null;
}

export async function isAncestor(dir: string, ancestor: string, descendant: string): Promise<boolean> {
  const r = await runGit(['merge-base', '--is-ancestor', ancestor, descendant], {
    cwd: dir,
    okExitCodes: [0, 1],
  });
  return r.exitCode === 0;
}

export async function mergeBase(dir: string, a: string, b: string): Promise<string | null> {
  const r = await runGit(['merge-base', a, b], { cwd: dir, okExitCodes: [0, 1] });
  return r.exitCode === 0 ? r.stdout.toString('utf8').trim() : null;
}

/**
 * Merges `source` into `target` in memory: the tree the merge produces, or the conflicting files.
 * `git merge-tree --write-tree -z --name-only` prints the tree, NUL, the conflicted paths each
 * followed by NUL, an empty field, then informational messages.
 */
export async function mergeTree(
  dir: string,
  targetSha: string,
  sourceSha: string,
): Promise<{ tree: string; conflicts: string[] }> {
  const r = await runGit(['merge-tree', '--write-tree', '-z', '--name-only', targetSha, sourceSha], {
    cwd: dir,
    okExitCodes: [0, 1],
  });
  const fields = r.stdout.toString('utf8').split('\0');
  const tree = fields[0]!.trim();
  const conflicts: string[] = [];
  if (r.exitCode === 1) {
    for (const f of fields.slice(1)) {
      if (f === '') break;
      if (!conflicts.includes(f)) conflicts.push(f);
    }
  }
  return { tree, conflicts };
}

async function treeOf(dir: string, sha: string): Promise<string> {
  const r = await runGit(['rev-parse', `${sha}^{tree}`], { cwd: dir });
  return r.stdout.toString('utf8').trim();
}

async function commitTree(
  dir: string,
  tree: string,
  parents: string[],
  message: string,
  author: Identity,
  committer: Identity,
): Promise<string> {
  const args = ['commit-tree', tree];
  for (const p of parents) args.push('-p', p);
  const r = await runGit(args, {
    cwd: dir,
    input: message,
    env: {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_COMMITTER_NAME: committer.name,
      GIT_COMMITTER_EMAIL: committer.email,
    },
  });
  return r.stdout.toString('utf8').trim();
}

/** Computes the commit that merging `sourceSha` into `targetSha` with `strategy` gives. */
export async function prepareMerge(
  dir: string,
  input: {
    targetSha: string;
    sourceSha: string;
    strategy: MergeStrategy;
    message: string;
    author: Identity;
    committer: Identity;
  },
): Promise<MergeAttempt> {
  const { targetSha, sourceSha } = input;
  if (await isAncestor(dir, sourceSha, targetSha)) throw new NothingToMergeError('already merged');
  if (input.strategy === 'fast_forward') {
    if (!(await isAncestor(dir, targetSha, sourceSha))) {
      throw new NotFastForwardError('the target branch has commits the source branch does not have');
    }
    return { targetSha, sourceSha, newSha: sourceSha };
  }
  const { tree, conflicts } = await mergeTree(dir, targetSha, sourceSha);
  if (conflicts.length > 0) throw new MergeConflictError(conflicts);
  if (input.strategy === 'squash') {
    // A squash of changes that are already in the target would be an empty commit.
    if (tree === (await treeOf(dir, targetSha))) throw new NothingToMergeError('no changes to merge');
    const newSha = await commitTree(dir, tree, [targetSha], input.message, input.author, input.committer);
    return { targetSha, sourceSha, newSha };
  }
  const newSha = await commitTree(
    dir,
    tree,
    [targetSha, sourceSha],
    input.message,
    input.committer,
    input.committer,
  );
  return { targetSha, sourceSha, newSha };
}

/** Moves `branch` from `oldSha` to `newSha` atomically; false when the branch no longer is at `oldSha`. */
export async function compareAndSwapBranch(
  dir: string,
  branch: string,
  newSha: string,
  oldSha: string,
  reason: string,
): Promise<boolean> {
  const r = await runGit(['update-ref', '-m', reason, refOf(branch), newSha, oldSha], {
    cwd: dir,
    okExitCodes: [0, 1, 128],
  });
  return r.exitCode === 0;
}

/** Commits reachable from `after` but not from `before` (what a push added). */
export async function newCommits(dir: string, before: string, after: string): Promise<Set<string>> {
  const r = await runGit(['rev-list', after, `^${before}`], { cwd: dir });
  return new Set(r.stdout.toString('utf8').split('\n').filter(Boolean));
}

export interface CommitInfo {
  sha: string;
  author_name: string;
  author_email: string;
  authored_at: string;
  title: string;
}

/** Commits on `head` not on `base`, newest first. */
export async function commitsBetween(
  dir: string,
  base: string,
  head: string,
  max = 250,
): Promise<CommitInfo[]> {
  const r = await runGit(
    ['log', `--max-count=${max}`, '-z', '--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%s', `${base}..${head}`],
    {
      cwd: dir,
    },
  );
  return r.stdout
    .toString('utf8')
    .split('\0')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [sha, author_name, author_email, authored_at, title] = line.replace(/^\n/, '').split('\x1f');
      return {
        sha: sha!,
        author_name: author_name!,
        author_email: author_email!,
        authored_at: authored_at!,
        title: title ?? '',
      };
    });
}

export interface DiffStats {
  files_changed: number;
  additions: number;
  deletions: number;
  files: { path: string; additions: number | null; deletions: number | null }[];
}

/** What the MR changes: the diff from the merge base to the head (binary files count without lines). */
export async function diffStats(
  dir: string,
  base: string,
  head: string,
  maxFiles = 1000,
): Promise<DiffStats> {
  const r = await runGit(['diff', '--numstat', '-z', '--no-renames', base, head], { cwd: dir });
  const stats: DiffStats = { files_changed: 0, additions: 0, deletions: 0, files: [] };
  for (const entry of r.stdout.toString('utf8').split('\0')) {
    if (entry === '') continue;
    const [add, del, ...rest] = entry.split('\t');
    const file = rest.join('\t');
    const additions = add === '-' ? null : Number(add);
    const deletions = del === '-' ? null : Number(del);
    stats.files_changed++;
    stats.additions += additions ?? 0;
    stats.deletions += deletions ?? 0;
    if (stats.files.length < maxFiles) stats.files.push({ path: file, additions, deletions });
  }
  return stats;
}
