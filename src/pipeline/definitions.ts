import { GitError, runGit } from '../git/index.js';
import { DefinitionError, parseDefinition } from './definition.js';
import type { PipelineDefinition } from './definition-types.js';
import { DEFINITION_FILE } from './types.js';

/** Reading what a pipeline builds from the repository: the definition, the commit, refs. */

export type DefinitionAt =
  | { kind: 'missing' }
  | { kind: 'invalid'; error: string }
  | { kind: 'ok'; definition: PipelineDefinition };

export async function definitionAt(repoDir: string, sha: string): Promise<DefinitionAt> {
  let text: string;
  try {
    const r = await runGit(['show', `${sha}:${DEFINITION_FILE}`], {
      cwd: repoDir,
      maxOutputBytes: 1024 * 1024,
      timeoutMs: 30_000,
    });
    text = r.stdout.toString('utf8');
  } catch (err) {
    if (err instanceof GitError) return { kind: 'missing' };
    throw err;
  }
  try {
    return { kind: 'ok', definition: parseDefinition(text) };
  } catch (err) {
    if (err instanceof DefinitionError) return { kind: 'invalid', error: err.message };
    throw err;
  }
}

/**
 * The commit `sha` names and its message, in one git call: a pushed annotated tag names the tag
 * object, and pipelines build (and report) the commit it points to (`git log` peels it).
 */
export async function commitAt(repoDir: string, sha: string): Promise<{ sha: string; message: string }> {
  const r = await runGit(['log', '-1', '--format=%H%x00%B', sha], { cwd: repoDir, timeoutMs: 30_000 });
  const [commit, message = ''] = r.stdout.toString('utf8').split('\0');
  return { sha: commit!.trim(), message: message.trim().slice(0, 10_000) };
}

/** The commit a ref (branch name, tag name or full ref) points at, with the full ref; null when unknown. */
export async function resolveRef(repoDir: string, ref: string): Promise<{ ref: string; sha: string } | null> {
  const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  for (const candidate of candidates) {
    if (!/^refs\/(heads|tags)\/[^\0\s~^:?*[\\]+$/.test(candidate) || candidate.includes('..')) continue;
    const r = await runGit(['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], {
      cwd: repoDir,
      okExitCodes: [0, 1, 128],
    });
    if (r.exitCode === 0) return { ref: candidate, sha: r.stdout.toString('utf8').trim() };
  }
  return null;
}
