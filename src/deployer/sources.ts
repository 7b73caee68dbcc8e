import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Selectable } from 'kysely';
import { GitError, runGit } from '../core/git.js';
import type { OutboundClient } from '../core/outbound.js';
import type { OpsReposTable } from '../store/schema.js';
import type { TemplateFile } from './render.js';

export type OpsRepoRow = Selectable<OpsReposTable>;

/** Where the manifests of one deployment come from, resolved to a commit. */
export interface ManifestSource {
  kind: 'ops_repo' | 'project';
  /** The commit the files were read at (`current_ops_sha` / history `ops_sha`). */
  sha: string;
  /** The directory inside that commit (`apps/<project>` or `deploy`). */
  dir: string;
  templates: TemplateFile[];
  values: TemplateFile | null;
  environmentValues: TemplateFile | null;
}

/** The manifests could not be read (sync failure, missing directory): the deploy fails with this. */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

const GIT_TIMEOUT_MS = 60_000;
const MAX_FILES = 100;
const MAX_FILE_BYTES = 256 * 1024;

/** What sync needs to reach an external repository. */
export interface SyncAccess {
  outbound: OutboundClient;
  /** The value of a global secret holding credentials (`user:password` or a token). */
  credential(name: string): Promise<string>;
  /** The bare repository of a project on this platform. */
  projectRepoDir(projectId: string): Promise<string>;
}

/** The local mirror of an ops repository under `<data>/ops-repos/`. */
export function mirrorDir(dataDir: string, repoId: string): string {
  return path.join(dataDir, 'ops-repos', `${repoId}.git`);
}

/**
 * Fetches the ops repo's branch into its mirror and answers the commit. A project on this platform
 * is fetched from its bare repository on disk (no network); an external URL is checked by the
 * outbound guard first (scheme http/https, no internal address unless allow-listed), and its
 * credentials travel in git's environment (`GIT_CONFIG_*`), never on a command line or in the URL.
 */
export async function syncOpsRepo(dataDir: string, repo: OpsRepoRow, access: SyncAccess): Promise<string> {
  const dir = mirrorDir(dataDir, repo.id);
  await mkdir(path.dirname(dir), { recursive: true });
  await runGit(['init', '--bare', '-q', dir], { timeoutMs: GIT_TIMEOUT_MS });
  let source: string;
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: '0' };
  if (repo.project_id) {
    source = await access.projectRepoDir(repo.project_id);
  } else {
    let url: URL;
    try {
      url = (await access.outbound.check(repo.repo_url)).url;
    } catch (err) {
      throw new SourceError(`ops repo URL refused: ${(err as Error).message}`);
    }
    if (url.username || url.password)
      throw new SourceError('ops repo URL must not carry credentials; use credentials_secret');
    source = url.toString();
    if (repo.credentials_secret) {
      const value = await access.credential(repo.credentials_secret);
      const basic = value.includes(':') ? value : `x-access-token:${value}`;
      env.GIT_CONFIG_COUNT = '1';
      env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
      env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${Buffer.from(basic).toString('base64')}`;
    }
    // No redirects to elsewhere, no other protocols (file://, ssh, ext::) whatever the server answers.
    env.GIT_ALLOW_PROTOCOL = 'http:https';
  }
  try {
    await runGit(
      [
        '-c',
        'http.followRedirects=false',
        'fetch',
        '-q',
        '--no-tags',
        '--prune',
        '--depth=50',
        source,
        `+refs/heads/${repo.branch}:refs/heads/${repo.branch}`,
      ],
      { cwd: dir, env, timeoutMs: GIT_TIMEOUT_MS },
    );
    const sha = await runGit(['rev-parse', '--verify', `refs/heads/${repo.branch}^{commit}`], { cwd: dir });
    return sha.stdout.toString('utf8').trim();
  } catch (err) {
    const detail = err instanceof GitError ? err.message : (err as Error).message;
    // The credential header never appears in git's messages, but the value is masked anyway.
    throw new SourceError(`sync of ops repo ${repo.name} failed: ${redact(detail, env.GIT_CONFIG_VALUE_0)}`);
  }
}

function redact(text: string, secret: string | undefined): string {
  const firstLine = text.split('\n').slice(0, 3).join(' ').slice(0, 500);
  return secret ? firstLine.split(secret).join('[redacted]') : firstLine;
}

/**
 * Reads `<dir>/*.yaml` templates and the values files of one environment from a git repository at a
 * commit. Templates are every `.yaml`/`.yml` file directly in the directory except `values.yaml`
 * and `*.values.yaml`.
 */
export async function readManifestDir(
  gitDir: string,
  sha: string,
  dir: string,
  environment: string,
  kind: ManifestSource['kind'],
): Promise<ManifestSource> {
  const listing = await runGit(['ls-tree', '--name-only', '-z', `${sha}:${dir}`], {
    cwd: gitDir,
    okExitCodes: [0, 128],
  });
  if (listing.exitCode !== 0) throw new SourceError(`${dir}/ does not exist at ${sha.slice(0, 12)}`);
  const names = listing.stdout
    .toString('utf8')
    .split('\0')
    .filter((n) => /\.ya?ml$/.test(n));
  if (names.length > MAX_FILES) throw new SourceError(`${dir}/ holds more than ${MAX_FILES} YAML files`);
  const read = async (name: string): Promise<TemplateFile> => {
    const res = await runGit(['cat-file', 'blob', `${sha}:${dir}/${name}`], {
      cwd: gitDir,
      maxOutputBytes: MAX_FILE_BYTES,
    });
    if (res.truncated) throw new SourceError(`${dir}/${name} is larger than ${MAX_FILE_BYTES} bytes`);
    return { path: `${dir}/${name}`, text: res.stdout.toString('utf8') };
  };
  const templates: TemplateFile[] = [];
  let values: TemplateFile | null = null;
  let environmentValues: TemplateFile | null = null;
  for (const name of names.sort()) {
    if (name === 'values.yaml' || name === 'values.yml') values = await read(name);
    else if (name === `${environment}.values.yaml` || name === `${environment}.values.yml`)
      environmentValues = await read(name);
    else if (/\.values\.ya?ml$/.test(name)) continue;
    else templates.push(await read(name));
  }
  if (templates.length === 0) throw new SourceError(`${dir}/ holds no manifest templates`);
  return { kind, sha, dir, templates, values, environmentValues };
}

/** The `apps/<project>` directory of an ops repo (below its `path`). */
export function opsAppDir(repo: Pick<OpsRepoRow, 'path'>, projectName: string): string {
  const base = repo.path.replace(/^\/+|\/+$/g, '');
  return base ? `${base}/apps/${projectName}` : `apps/${projectName}`;
}
