import { z } from 'zod';
import { AppError, badRequest, notFound } from '../core/errors.js';
import { GitError, runGit, streamGit } from '../core/git.js';
import { type AnyRouteDef, route, uuidParam } from '../core/http.js';
import { decodeCursor, encodeCursor } from '../core/pagination.js';
import type { ProjectsService } from '../projects/index.js';
import { downloadHeaders } from '../store/objects/download.js';
import {
  BlobSchema,
  BranchListSchema,
  CommitDetailSchema,
  type CommitInfo,
  CommitListSchema,
  CompareSchema,
  TagListSchema,
  TreeSchema,
} from './schemas.js';

const MAX_BLOB_BYTES = 1024 * 1024;
const MAX_PATCH_BYTES = 1024 * 1024;
const MAX_RAW_BYTES = 512 * 1024 * 1024;

/** Ref names and paths come from clients: only shapes git cannot mistake for options or ranges. */
export const refSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9._/@{}^~-]+$/, 'invalid ref')
  .refine((r) => !r.startsWith('-') && !r.includes('..') && !r.includes('@{'), 'invalid ref');
export const pathSchema = z
  .string()
  .max(4096)
  .refine(
    (p) =>
      !p.startsWith('/') &&
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
      !/[\x00-\x1f]/.test(p) &&
      !p.split('/').some((s) => s === '..' || s === '.'),
    'invalid path',
  )
  .transform((p) => p.replace(/\/+$/, ''));

const ENTRY_TYPES = { blob: 'blob', tree: 'tree', commit: 'commit' } as const;

const COMMIT_FORMAT = '%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e';

function parseCommits(out: Buffer): CommitInfo[] {
  return out
    .toString('utf8')
    .split('\x1e')
    .map((s) => s.replace(/^\n/, ''))
    .filter((s) => s.length > 0)
    .map((record) => {
      const [sha = '', parents = '', an = '', ae = '', ad = '', cn = '', ce = '', cd = '', body = ''] =
        record.split('\x00');
      const message = body.trimEnd();
      return {
        sha,
        parents: parents.split(' ').filter(Boolean),
        author: { name: an, email: ae, date: ad },
        committer: { name: cn, email: ce, date: cd },
        title: message.split('\n')[0] ?? '',
        message,
      };
    });
}

function parseNumstat(out: string) {
  const files = out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [add = '0', del = '0', ...rest] = line.split('\t');
      const binary = add === '-';
      return {
        path: rest.join('\t'),
        additions: binary ? 0 : Number(add),
        deletions: binary ? 0 : Number(del),
        binary,
      };
    });
  return {
    files,
    stats: {
      files_changed: files.length,
      additions: files.reduce((n, f) => n + f.additions, 0),
      deletions: files.reduce((n, f) => n + f.deletions, 0),
    },
  };
}

function isText(buf: Buffer): boolean {
  if (buf.subarray(0, 8000).includes(0)) return false;
  return new TextDecoder('utf-8', { fatal: false }).decode(buf).includes('\uFFFD') === false;
}

/** Read-only views of a repository; every git failure becomes a 404 or 400 with our own words. */
export class RepoBrowser {
  constructor(private readonly projects: ProjectsService) {}

  private async dir(projectId: string): Promise<{ dir: string; defaultBranch: string }> {
    const project = await this.projects.get(projectId);
    return { dir: this.projects.repoDir(project), defaultBranch: project.default_branch };
  }

  /** The commit a ref names, or 404. */
  async resolveCommit(dir: string, ref: string): Promise<string> {
    try {
      const { stdout } = await runGit(
        ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`],
        { cwd: dir },
      );
      return stdout.toString().trim();
    } catch {
      throw notFound(`ref "${ref}"`);
    }
  }

  async branches(projectId: string) {
    const { dir, defaultBranch } = await this.dir(projectId);
    const { stdout } = await runGit(
      [
        'for-each-ref',
        '--sort=refname',
        '--format=%(refname:strip=2)%00%(objectname)%00%(contents:subject)%00%(committerdate:iso-strict)',
        'refs/heads/',
      ],
      { cwd: dir },
    );
    const items = stdout
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name = '', sha = '', title = '', date = ''] = line.split('\x00');
        return { name, sha, is_default: name === defaultBranch, commit: { sha, title, committed_at: date } };
      });
    return { items, next_cursor: null };
  }

  async tags(projectId: string) {
    const { dir } = await this.dir(projectId);
    const { stdout } = await runGit(
      [
        'for-each-ref',
        '--sort=-creatordate',
        '--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)%00%(contents:subject)',
        'refs/tags/',
      ],
      { cwd: dir },
    );
    const items = stdout
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name = '', sha = '', peeled = '', message = ''] = line.split('\x00');
        return { name, sha, commit_sha: peeled || sha, annotated: Boolean(peeled), message };
      });
    return { items, next_cursor: null };
  }

  private async objectType(dir: string, spec: string): Promise<string> {
    try {
      return (await runGit(['cat-file', '-t', spec], { cwd: dir })).stdout.toString().trim();
    } catch {
      return '';
    }
  }

  async tree(projectId: string, refArg: string | undefined, path: string) {
    const { dir, defaultBranch } = await this.dir(projectId);
    const ref = refArg ?? defaultBranch;
    const commit = await this.resolveCommit(dir, ref);
    const spec = path ? `${commit}:${path}` : `${commit}^{tree}`;
    const type = await this.objectType(dir, spec);
    if (type !== 'tree')
      throw notFound(type ? `directory "${path}" (it is a ${type})` : `path "${path}" at ${ref}`);
    const { stdout } = await runGit(['ls-tree', '-l', '-z', spec], { cwd: dir });
    const entries = stdout
      .toString('utf8')
      .split('\0')
      .filter(Boolean)
      .map((record) => {
        const tab = record.indexOf('\t');
        const [mode = '', kind = '', sha = '', size = '-'] = record.slice(0, tab).split(/\s+/);
        const name = record.slice(tab + 1);
        return {
          name,
          path: path ? `${path}/${name}` : name,
          type: ENTRY_TYPES[kind as keyof typeof ENTRY_TYPES] ?? 'blob',
          size: size === '-' ? null : Number(size),
          mode,
          sha,
        };
      });
    return { ref, commit_sha: commit, path, entries };
  }

  private async blobSpec(projectId: string, refArg: string | undefined, path: string) {
    if (!path) throw badRequest('path is required', [{ path: 'query.path', message: 'required' }]);
    const { dir, defaultBranch } = await this.dir(projectId);
    const ref = refArg ?? defaultBranch;
    const commit = await this.resolveCommit(dir, ref);
    const spec = `${commit}:${path}`;
    const type = await this.objectType(dir, spec);
    if (type !== 'blob')
      throw notFound(type ? `file "${path}" (it is a ${type})` : `path "${path}" at ${ref}`);
    const size = Number((await runGit(['cat-file', '-s', spec], { cwd: dir })).stdout.toString().trim());
    const sha = (await runGit(['rev-parse', spec], { cwd: dir })).stdout.toString().trim();
    return { dir, ref, commit, spec, size, sha };
  }

  async blob(projectId: string, refArg: string | undefined, path: string) {
    const b = await this.blobSpec(projectId, refArg, path);
    if (b.size > MAX_BLOB_BYTES) {
      throw new AppError(
        413,
        'payload_too_large',
        `file is ${b.size} bytes; use the raw endpoint for files over ${MAX_BLOB_BYTES} bytes`,
      );
    }
    const { stdout } = await runGit(['cat-file', 'blob', b.spec], { cwd: b.dir });
    const text = isText(stdout);
    return {
      ref: b.ref,
      commit_sha: b.commit,
      path,
      sha: b.sha,
      size: b.size,
      encoding: text ? 'utf8' : 'base64',
      content: text ? stdout.toString('utf8') : stdout.toString('base64'),
    };
  }

  /**
   * A file's bytes as a stream from `git cat-file`, never held in memory: the reply's backpressure
   * slows git down, and the caller kills it when the client goes away.
   */
  async raw(projectId: string, refArg: string | undefined, path: string) {
    const b = await this.blobSpec(projectId, refArg, path);
    if (b.size > MAX_RAW_BYTES) {
      throw new AppError(
        413,
        'payload_too_large',
        `file is ${b.size} bytes; the limit is ${MAX_RAW_BYTES} bytes`,
      );
    }
    return { ...streamGit(['cat-file', 'blob', b.spec], { cwd: b.dir }), size: b.size, sha: b.sha };
  }

  async commits(projectId: string, q: { ref?: string; path?: string; limit: number; cursor?: string }) {
    const { dir, defaultBranch } = await this.dir(projectId);
    let start: string;
    let skip = 0;
    if (q.cursor) {
      const [sha, offset] = decodeCursor(q.cursor, 2) as [string, string];
      if (!/^[0-9a-f]{40,64}$/.test(sha) || !/^\d{1,9}$/.test(offset)) throw badRequest('invalid cursor');
      start = sha;
      skip = Number(offset);
    } else {
      start = await this.resolveCommit(dir, q.ref ?? defaultBranch);
    }
    const args = [
      'log',
      `--format=${COMMIT_FORMAT}`,
      `--skip=${skip}`,
      `--max-count=${q.limit + 1}`,
      start,
      '--',
    ];
    if (q.path) args.push(q.path);
    const commits = parseCommits((await runGit(args, { cwd: dir })).stdout);
    const more = commits.length > q.limit;
    return {
      items: commits.slice(0, q.limit),
      next_cursor: more ? encodeCursor([start, String(skip + q.limit)]) : null,
    };
  }

  private async diff(dir: string, range: string[]) {
    const numstat = await runGit(['diff', '--numstat', '--no-renames', ...range, '--'], { cwd: dir });
    const patch = await runGit(['diff', '--no-color', '--no-renames', ...range, '--'], {
      cwd: dir,
      maxOutputBytes: MAX_PATCH_BYTES,
    });
    return {
      ...parseNumstat(numstat.stdout.toString()),
      patch: patch.stdout.toString('utf8'),
      patch_truncated: patch.truncated,
    };
  }

  async commit(projectId: string, sha: string) {
    const { dir } = await this.dir(projectId);
    const commit = await this.resolveCommit(dir, sha);
    const [info] = parseCommits(
      (await runGit(['log', '-1', `--format=${COMMIT_FORMAT}`, commit, '--'], { cwd: dir })).stdout,
    );
    const parent = info?.parents[0];
    const range = parent
      ? [parent, commit]
      : [
          (await runGit(['hash-object', '-t', 'tree', '/dev/null'], { cwd: dir })).stdout.toString().trim(),
          commit,
        ];
    return { ...info, ...(await this.diff(dir, range)) };
  }

  async compare(projectId: string, baseRef: string, headRef: string) {
    const { dir } = await this.dir(projectId);
    const base = await this.resolveCommit(dir, baseRef);
    const head = await this.resolveCommit(dir, headRef);
    let mergeBase: string | null = null;
    try {
      mergeBase = (await runGit(['merge-base', base, head], { cwd: dir })).stdout.toString().trim();
    } catch (err) {
      if (!(err instanceof GitError)) throw err;
    }
    const commits = parseCommits(
      (
        await runGit(['log', `--format=${COMMIT_FORMAT}`, '--max-count=250', `${base}..${head}`, '--'], {
          cwd: dir,
        })
      ).stdout,
    );
    return {
      base_sha: base,
      head_sha: head,
      merge_base_sha: mergeBase,
      commits,
      ...(await this.diff(dir, [mergeBase ?? base, head])),
    };
  }
}

export function browseRoutes(browser: RepoBrowser): AnyRouteDef[] {
  const read = { permission: 'project:read', projectParam: 'id' } as const;
  const fileQuery = z.object({ ref: refSchema.optional(), path: pathSchema.default('') });
  return [
    route({
      method: 'GET',
      url: '/api/projects/:id/branches',
      summary: 'Branches with their head commit',
      tags: ['git'],
      access: read,
      response: BranchListSchema,
      params: uuidParam,
      handler: async ({ params }) => browser.branches(params.id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/tags',
      summary: 'Tags',
      tags: ['git'],
      access: read,
      response: TagListSchema,
      params: uuidParam,
      handler: async ({ params }) => browser.tags(params.id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/tree',
      summary: 'Directory listing at a ref (default: the default branch)',
      tags: ['git'],
      access: read,
      response: TreeSchema,
      params: uuidParam,
      query: fileQuery,
      handler: async ({ params, query }) => browser.tree(params.id, query.ref, query.path),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/blob',
      summary: 'File content: text, or base64 for binary (1 MiB max; see raw)',
      tags: ['git'],
      access: read,
      response: BlobSchema,
      params: uuidParam,
      query: fileQuery,
      handler: async ({ params, query }) => browser.blob(params.id, query.ref, query.path),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/raw',
      summary: 'Raw file bytes',
      tags: ['git'],
      access: read,
      produces: {
        contentType: 'application/octet-stream',
        description: 'the file, streamed as an attachment (ETag: the blob id); 413 over 512 MiB',
      },
      params: uuidParam,
      query: fileQuery,
      raw: true,
      handler: async ({ params, query, reply }) => {
        const file = await browser.raw(params.id, query.ref, query.path);
        // A client that goes away before the last byte takes git down with it.
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) file.kill();
        });
        return reply
          .headers(downloadHeaders({ filename: query.path }))
          .header('etag', `"${file.sha}"`)
          .header('content-length', String(file.size))
          .send(file.stdout);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/commits',
      summary: 'Commit history (paged; optionally of one path)',
      tags: ['git'],
      access: read,
      response: CommitListSchema,
      params: uuidParam,
      query: z.object({
        ref: refSchema.optional(),
        path: pathSchema.optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().max(500).optional(),
      }),
      handler: async ({ params, query }) => browser.commits(params.id, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/commits/:sha',
      summary: 'One commit with diff stats and patch (patch capped at 1 MiB)',
      tags: ['git'],
      access: read,
      response: CommitDetailSchema,
      params: z.object({
        id: z.uuid(),
        sha: z.string().regex(/^[0-9a-f]{4,64}$/, 'must be a hex commit id'),
      }),
      handler: async ({ params }) => browser.commit(params.id, params.sha),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/compare',
      summary: 'Commits in head not in base, and the diff from their merge base',
      tags: ['git'],
      access: read,
      response: CompareSchema,
      params: uuidParam,
      query: z.object({ base: refSchema, head: refSchema }),
      handler: async ({ params, query }) => browser.compare(params.id, query.base, query.head),
    }),
  ];
}
