import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { AppError, notFound, unauthorized } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import { gitEnv, killTree, runGit } from '../core/git.js';
import { type AnyRouteDef, type Principal, route } from '../core/http.js';
import { SLUG } from '../core/validation.js';
import { loadProtectionRules, type ProjectRow, type ProjectsService, pushPolicy } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import type { PushReceivedEvent } from './events.js';
import { type PushReplies, withRemoteLines } from './push-replies.js';

export const repoParams = z.object({
  owner: z.string().max(63).regex(new RegExp(SLUG.source, 'i'), 'invalid owner name'),
  repo: z
    .string()
    .max(67)
    .regex(/^[a-z0-9][a-z0-9_.-]{0,62}(\.git)?$/i, 'invalid repository name')
    .refine((s) => !s.includes('..') && !s.replace(/\.git$/, '').endsWith('.git'), 'invalid repository name'),
});
const ZERO = /^0+$/;

export interface PushedRef {
  ref: string;
  before: string;
  after: string;
}

/** Called after each accepted push, once per updated ref (e.g. the pipeline trigger). */
export type PushListener = (push: {
  project: ProjectRow;
  pusher: Principal;
  ref: PushedRef;
  dir: string;
}) => Promise<void>;

export interface SmartHttpDeps {
  db: Db;
  projects: ProjectsService;
  rbac: RbacService;
  events: EventBus;
  log: Logger;
  hooksDir: string;
  bodyLimit: number;
  onPush: PushListener[];
  /** What subscribers tell the pusher (`remote:` lines at the end of the push). */
  replies: PushReplies;
  publicUrl: string;
}

/** What a push did, for its answer: the events emitted and the branches it created. */
interface PushOutcome {
  events: PushReceivedEvent[];
  createdBranches: string[];
}

const NOTHING_PUSHED: PushOutcome = { events: [], createdBranches: [] };

/**
 * Resolves `/:owner/:repo` to a project the caller may use: anonymous callers who are refused get
 * a 401 with WWW-Authenticate so stock git prompts; a project the caller cannot see is a 404.
 */
export async function resolveRepo(
  deps: Pick<SmartHttpDeps, 'projects' | 'rbac'>,
  req: FastifyRequest,
  params: z.infer<typeof repoParams>,
  permission: 'project:read' | 'project:write',
): Promise<{ project: ProjectRow; redirect?: string }> {
  const name = params.repo.replace(/\.git$/, '');
  const found = await deps.projects.findByName(params.owner, name);
  if (!found) {
    if (!req.principal) throw unauthorized(); // the error handler adds the Basic challenge on git paths
    throw notFound('repository');
  }
  const decision = await deps.rbac.check(req.principal, permission, found.project.id);
  if (decision !== 'allowed') {
    if (!req.principal) throw unauthorized(); // the error handler adds the Basic challenge on git paths
    if (decision === 'hidden') throw notFound('repository');
    throw new AppError(
      403,
      'forbidden',
      `${permission} required on ${found.project.owner_name}/${found.project.name}`,
    );
  }
  if (found.redirected) {
    const suffix = params.repo.endsWith('.git') ? '.git' : '';
    const prefix = `/${params.owner}/${params.repo}`;
    const rest = req.url.slice(req.url.indexOf(prefix) + prefix.length);
    return {
      project: found.project,
      redirect: `/${found.project.owner_name}/${found.project.name}${suffix}${rest}`,
    };
  }
  return { project: found.project };
}

function pktLine(text: string): string {
  return `${(text.length + 4).toString(16).padStart(4, '0')}${text}`;
}

function noCache(reply: FastifyReply): void {
  reply.header('cache-control', 'no-cache, max-age=0, must-revalidate');
  reply.header('pragma', 'no-cache');
  reply.header('expires', 'Fri, 01 Jan 1980 00:00:00 GMT');
}

function protocolEnv(req: FastifyRequest): Record<string, string> {
  const header = req.headers['git-protocol'];
  // Only well-formed `key=value:key` values reach git.
  return typeof header === 'string' && /^[A-Za-z0-9=:._-]{1,200}$/.test(header)
    ? { GIT_PROTOCOL: header }
    : {};
}

export function smartHttpRoutes(deps: SmartHttpDeps): { routes: AnyRouteDef[]; drain(): Promise<void> } {
  const inFlight = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    const p = work.catch((err: unknown) => deps.log.error({ err }, 'push processing failed'));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const service = z.object({ service: z.enum(['git-upload-pack', 'git-receive-pack']) });

  /** The projects module's branch protection, for this pusher, handed to the pre-receive hook. */
  const policyEnv = async (project: ProjectRow, pusher: Principal) => {
    const admin = await deps.rbac.can(pusher, 'admin:users');
    const rules = await loadProtectionRules(deps.db, project.id);
    const policy = pushPolicy(rules, project.default_branch, { userId: pusher.userId, admin });
    return {
      PLATFORM_NO_FORCE: policy.noForce.join(' '),
      PLATFORM_NO_DELETE: policy.noDelete.join(' '),
      PLATFORM_NO_DIRECT_PUSH: policy.noDirectPush.join(' '),
    };
  };

  const afterPush = async (
    project: ProjectRow,
    pusher: Principal,
    ip: string,
    dir: string,
    logFile: string,
  ): Promise<PushOutcome> => {
    let log = '';
    try {
      log = await readFile(logFile, 'utf8');
    } catch {
      return NOTHING_PUSHED; // no ref moved
    } finally {
      await rm(logFile, { force: true });
    }
    const updates = log
      .split('\n')
      .map((l) => l.trim().split(' '))
      .filter((parts) => parts.length === 3)
      .map(([before = '', after = '', ref = '']) => ({ ref, before, after }));
    if (updates.length === 0) return NOTHING_PUSHED;
    const outcome: PushOutcome = { events: [], createdBranches: [] };
    await writeAudit(deps.db, {
      actor: { id: pusher.userId, name: pusher.userName, ip },
      action: 'git.push',
      resourceType: 'project',
      resourceId: project.id,
      projectId: project.id,
      detail: { refs: updates },
    });
    for (const pushed of updates) {
      const { before, after, ref } = pushed;
      const commits = ZERO.test(after)
        ? []
        : await commitsOf(dir, ZERO.test(before) ? after : `${before}..${after}`);
      for (const listener of deps.onPush) {
        try {
          await listener({ project, pusher, ref: pushed, dir });
        } catch (err) {
          deps.log.error({ err, ref }, 'push listener failed');
        }
      }
      const event: PushReceivedEvent = {
        projectId: project.id,
        ref,
        before,
        after,
        created: ZERO.test(before),
        deleted: ZERO.test(after),
        pusherId: pusher.userId,
        pusherName: pusher.userName,
        commits,
      };
      deps.events.emit('push.received', event);
      outcome.events.push(event);
      const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
      if (event.created && branch !== undefined && branch !== project.default_branch) {
        outcome.createdBranches.push(branch);
      }
    }
    return outcome;
  };

  /** The `remote:` lines of a push's answer: what the subscribers started, and an offer per new branch. */
  const remoteLines = async (project: ProjectRow, outcome: Promise<PushOutcome>) => {
    const { events, createdBranches } = await outcome;
    const started = await deps.replies.collect(events);
    const offers = createdBranches.map(
      (branch) =>
        `Create a merge request for '${branch}': ${deps.publicUrl}/${project.owner_name}/${project.name}/-/merge_requests/new?source_branch=${encodeURIComponent(branch)}`,
    );
    return [...started, ...offers];
  };

  const rpc = async (
    req: FastifyRequest,
    reply: FastifyReply,
    params: z.infer<typeof repoParams>,
    name: 'git-upload-pack' | 'git-receive-pack',
  ) => {
    const write = name === 'git-receive-pack';
    const { project, redirect } = await resolveRepo(
      deps,
      req,
      params,
      write ? 'project:write' : 'project:read',
    );
    if (redirect) return reply.redirect(redirect, 307);
    const expected = `application/x-${name}-request`;
    if (req.headers['content-type'] !== expected) {
      throw new AppError(415, 'unsupported_media_type', `content-type must be ${expected}`);
    }
    const dir = deps.projects.repoDir(project);
    const logFile = path.join(tmpdir(), `platform-push-${randomUUID()}.log`);
    const env = write
      ? { ...protocolEnv(req), ...(await policyEnv(project, req.principal!)), PLATFORM_PUSH_LOG: logFile }
      : protocolEnv(req);
    const args = write
      ? ['-c', `core.hooksPath=${deps.hooksDir}`, 'receive-pack', '--stateless-rpc', dir]
      : ['upload-pack', '--stateless-rpc', dir];
    const child = spawn('git', args, { env: gitEnv(env), detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 8192) stderr += c.toString();
    });
    child.stdin.on('error', () => {});
    const body = req.body as Readable;
    const input =
      req.headers['content-encoding'] === 'gzip' ? inflateBounded(body, MAX_INFLATED_BODY_BYTES) : body;
    input.on('error', () => killTree(child));
    input.pipe(child.stdin);
    // A client that goes away mid-request (killed push) takes git down with it: refs stay unchanged.
    req.raw.on('close', () => {
      if (!req.raw.complete) killTree(child);
    });
    const exited = new Promise<void>((resolve) => {
      child.on('close', (code) => {
        if (code !== 0)
          deps.log.warn({ code, stderr: stderr.slice(0, 500), project: project.id }, `${name} failed`);
        resolve();
      });
    });
    noCache(reply);
    reply.type(`application/x-${name}-result`);
    if (!write) return reply.send(child.stdout);
    // Events, audit and pipeline triggers run once git has exited (the refs have moved); tracked
    // from the start so settle()/shutdown wait for them. The answer's last packet waits (bounded)
    // for the `remote:` lines about what the push started.
    const outcome = exited.then(() => afterPush(project, req.principal!, req.ip, dir, logFile));
    track(outcome.then(() => undefined));
    return reply.send(child.stdout.pipe(withRemoteLines(() => remoteLines(project, outcome))));
  };

  const routes = [
    route({
      method: 'GET',
      url: '/:owner/:repo/info/refs',
      summary: 'Git smart HTTP: ref advertisement',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: {
        contentType: 'application/x-git-upload-pack-advertisement',
        description: 'pkt-line ref advertisement (x-git-receive-pack-advertisement for pushes)',
      },
      params: repoParams,
      query: service,
      handler: async ({ req, reply, params, query }) => {
        const write = query.service === 'git-receive-pack';
        const { project, redirect } = await resolveRepo(
          deps,
          req,
          params,
          write ? 'project:write' : 'project:read',
        );
        if (redirect) return reply.redirect(redirect, 301);
        const env = protocolEnv(req);
        const { stdout } = await runGit(
          [query.service.slice(4), '--stateless-rpc', '--advertise-refs', deps.projects.repoDir(project)],
          {
            env,
            timeoutMs: 30_000,
          },
        );
        noCache(reply);
        reply.type(`application/x-${query.service}-advertisement`);
        // Protocol v2 starts with the capability list; v0/v1 with the service announcement.
        const v2 = env.GIT_PROTOCOL?.includes('version=2');
        return reply.send(
          v2
            ? stdout
            : Buffer.concat([Buffer.from(`${pktLine(`# service=${query.service}\n`)}0000`), stdout]),
        );
      },
    }),
    route({
      method: 'POST',
      url: '/:owner/:repo/git-upload-pack',
      summary: 'Git smart HTTP: fetch/clone',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: {
        contentType: 'application/x-git-upload-pack-result',
        description: 'the pack, pkt-line framed',
      },
      bodyLimit: deps.bodyLimit,
      params: repoParams,
      handler: async ({ req, reply, params }) => rpc(req, reply, params, 'git-upload-pack'),
    }),
    route({
      method: 'POST',
      url: '/:owner/:repo/git-receive-pack',
      summary: 'Git smart HTTP: push (push policy enforced before refs move)',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: {
        contentType: 'application/x-git-receive-pack-result',
        description: "receive-pack's report, with `remote:` lines about what the push started",
      },
      bodyLimit: deps.bodyLimit,
      params: repoParams,
      handler: async ({ req, reply, params }) => rpc(req, reply, params, 'git-receive-pack'),
    }),
  ];
  return {
    routes,
    drain: async () => {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}

async function commitsOf(dir: string, range: string) {
  const { stdout } = await runGit(
    ['log', '--max-count=100', '--format=%H%x00%an%x00%ae%x00%aI%x00%s%x1e', range, '--'],
    {
      cwd: dir,
      timeoutMs: 30_000,
    },
  );
  return stdout
    .toString('utf8')
    .split('\x1e')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((record) => {
      const [sha = '', author = '', email = '', date = '', message = ''] = record.split('\x00');
      return { sha, author, email, date, message };
    });
}

/**
 * The most a gzip-encoded git request body may inflate to. Git gzips only fetch negotiations (want
 * and have lines: kilobytes to a few megabytes even for very large repositories); without a bound,
 * a few hundred kilobytes of gzip would feed git gigabytes of have lines.
 */
export const MAX_INFLATED_BODY_BYTES = 64 * 1024 * 1024;

/** The body gunzipped, failing (git is then stopped) once it inflates past `limit` bytes. */
function inflateBounded(body: Readable, limit: number): Readable {
  let total = 0;
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      done(total > limit ? new Error(`gzip request body inflates past ${limit} bytes`) : null, chunk);
    },
  });
  const gunzip = createGunzip();
  gunzip.on('error', (err) => bounded.destroy(err));
  body.pipe(gunzip).pipe(bounded);
  return bounded;
}
