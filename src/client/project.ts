import { spawnSync } from 'node:child_process';
import { type CommandName, UsageError } from '../cli/help.js';
import { type ParsedArgs, stringOption } from './args.js';

/** owner/name from a git remote URL (https://host/owner/name.git, git@host:owner/name.git). */
export function projectFromRemote(remote: string): string | null {
  const m = remote.trim().match(/[:/]([^/:]+)\/([^/]+?)(?:\.git)?\/?$/);
  return m ? `${m[1]}/${m[2]}` : null;
}

/**
 * The project a command acts on: `-R owner/name`, else the `origin` remote of the git repository
 * the command runs in.
 */
export function resolveProject(args: ParsedArgs, command: CommandName, cwd = process.cwd()): string {
  const given = stringOption(args, 'repo');
  if (given) {
    if (!/^[^/\s]+\/[^/\s]+$/.test(given))
      throw new UsageError(`-R: expected owner/name, got '${given}'`, command);
    return given;
  }
  const git = spawnSync('git', ['remote', 'get-url', 'origin'], { cwd, encoding: 'utf8', timeout: 5000 });
  const fromRemote = git.status === 0 ? projectFromRemote(git.stdout) : null;
  if (!fromRemote)
    throw new UsageError(
      'which project? give -R owner/name (or run inside a clone whose origin is the project)',
      command,
    );
  return fromRemote;
}

/** The `/api/projects/:owner/:name` prefix of a project's routes. */
export function projectPath(project: string): string {
  const [owner, name] = project.split('/') as [string, string];
  return `/api/projects/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
}
