import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { type AnyRouteDef, type Principal, route } from '../core/http.js';
import { pageByTime } from '../core/pagination.js';
import { isUuid } from '../core/validation.js';
import type { ProjectRow } from '../projects/index.js';
import type { Db } from '../store/db.js';
import { LFS_TYPE, type LfsDeps } from './lfs.js';
import { GIT_REASONS } from './reasons.js';
import { repoParams, resolveRepo } from './smart-http.js';

/**
 * The Git LFS File Locking API (git-lfs docs/api/locking.md): `git lfs lock/locks/unlock`, and the
 * lock verification git-lfs runs before every push (a push touching a file somebody else locked is
 * refused by the client). A lock is per path in a project, whatever the ref.
 */

const lockPath = z
  .string()
  .min(1)
  .max(4096)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  .refine((p) => !/[\x00-\x1f]/.test(p), 'invalid path');
const refBody = z.object({ name: z.string().max(1024) }).optional();
const limit = z.coerce.number().int().min(1).max(1000).default(100);

export const lfsLockSchema = z
  .object({
    id: z.string(),
    path: z.string(),
    locked_at: z.string(),
    owner: z.object({ name: z.string() }),
  })
  .meta({ id: 'LfsLock' });
export type LfsLock = z.output<typeof lfsLockSchema>;

interface LockRow {
  id: string;
  path: string;
  locked_at: Date;
  owner_id: string;
  owner_name: string;
}

const toLock = (row: LockRow): LfsLock => ({
  id: row.id,
  path: row.path,
  locked_at: row.locked_at.toISOString(),
  owner: { name: row.owner_name },
});

function locksQuery(db: Db, projectId: string) {
  return db
    .selectFrom('lfs_locks')
    .innerJoin('users', 'users.id', 'lfs_locks.owner_id')
    .select([
      'lfs_locks.id',
      'lfs_locks.path',
      'lfs_locks.locked_at',
      'lfs_locks.owner_id',
      'users.name as owner_name',
    ])
    .where('lfs_locks.project_id', '=', projectId);
}

const LFS_CODES: Record<number, string> = { 403: 'forbidden', 404: 'not_found', 409: 'conflict' };

/**
 * The answer for a refusal in both dialects: git-lfs shows the top-level `message` (and, for a
 * conflict, reads `lock`); every other client reads the platform's error body.
 */
const lfsError = (
  reply: FastifyReply,
  status: 403 | 404 | 409,
  message: string,
  extra: { reason?: string; lock?: LfsLock } = {},
) => {
  const { reason, lock } = extra;
  return reply
    .code(status)
    .type(LFS_TYPE)
    .send({
      message,
      ...(lock ? { lock } : {}),
      error: { code: LFS_CODES[status], ...(reason ? { reason } : {}), message, details: [] },
    });
};

const nextCursor = (cursor: string | null) => (cursor ? { next_cursor: cursor } : {});

export function lfsLockRoutes(deps: Pick<LfsDeps, 'db' | 'projects' | 'rbac'>): AnyRouteDef[] {
  const { db } = deps;
  const byId = (projectId: string, id: string) =>
    locksQuery(db, projectId).where('lfs_locks.id', '=', id).executeTakeFirst();

  /** Breaking somebody else's lock: the project's owner or a platform administrator. */
  const mayForce = async (project: ProjectRow, principal: Principal) =>
    project.owner_id === principal.userId || (await deps.rbac.can(principal, 'admin:users'));

  const produces = (description: string) => ({ contentType: LFS_TYPE, description });

  return [
    route({
      method: 'POST',
      url: '/:owner/:repo/info/lfs/locks',
      summary: 'Git LFS: lock a path (409 with the existing lock when it is taken)',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: { status: 201, ...produces('{ lock }: the new lock') },
      reasons: [GIT_REASONS.lockTaken],
      params: repoParams,
      body: z.object({ path: lockPath, ref: refBody }),
      handler: async ({ req, reply, params, body }) => {
        const { project } = await resolveRepo(deps, req, params, 'project:write');
        const principal = req.principal!;
        const created = await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('lfs_locks')
            .values({
              project_id: project.id,
              path: body.path,
              ref_name: body.ref?.name ?? null,
              owner_id: principal.userId,
            })
            .onConflict((oc) => oc.columns(['project_id', 'path']).doNothing())
            .returning(['id', 'path', 'locked_at', 'owner_id'])
            .executeTakeFirst();
          if (!row) return undefined;
          await writeAudit(trx, {
            actor: { id: principal.userId, name: principal.userName, ip: req.ip },
            action: 'lfs.lock',
            resourceType: 'lfs_lock',
            resourceId: row.id,
            projectId: project.id,
            detail: { path: row.path, ref: body.ref?.name ?? null },
          });
          return { ...row, owner_name: principal.userName };
        });
        if (created)
          return reply
            .code(201)
            .type(LFS_TYPE)
            .send({ lock: toLock(created) });
        const existing = await locksQuery(db, project.id)
          .where('lfs_locks.path', '=', body.path)
          .executeTakeFirst();
        // Unlocked again between the two statements: the client may simply retry.
        if (!existing)
          return lfsError(reply, 409, 'the lock changed meanwhile; try again', {
            reason: GIT_REASONS.lockTaken,
          });
        return lfsError(reply, 409, `already locked by ${existing.owner_name}`, {
          reason: GIT_REASONS.lockTaken,
          lock: toLock(existing),
        });
      },
    }),
    route({
      method: 'GET',
      url: '/:owner/:repo/info/lfs/locks',
      summary: 'Git LFS: list locks (filters path, id; paged with cursor and limit)',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: produces('{ locks, next_cursor? }: the locks, oldest first'),
      params: repoParams,
      query: z.object({
        path: lockPath.optional(),
        id: z.string().max(64).optional(),
        cursor: z.string().max(500).optional(),
        limit,
        // Locks are not per ref: accepted (git-lfs sends it) and not used to filter.
        refspec: z.string().max(1024).optional(),
      }),
      handler: async ({ req, reply, params, query }) => {
        const { project } = await resolveRepo(deps, req, params, 'project:read');
        if (query.id !== undefined && !isUuid(query.id)) return reply.type(LFS_TYPE).send({ locks: [] });
        let q = locksQuery(db, project.id);
        if (query.path !== undefined) q = q.where('lfs_locks.path', '=', query.path);
        if (query.id !== undefined) q = q.where('lfs_locks.id', '=', query.id);
        const page = await pageByTime(
          q,
          { time: 'lfs_locks.locked_at', id: 'lfs_locks.id' },
          query,
          toLock,
          'asc',
        );
        return reply.type(LFS_TYPE).send({ locks: page.items, ...nextCursor(page.next_cursor) });
      },
    }),
    route({
      method: 'POST',
      url: '/:owner/:repo/info/lfs/locks/verify',
      summary: "Git LFS: the locks a pusher holds (ours) and everybody else's (theirs)",
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: produces('{ ours, theirs, next_cursor? }'),
      params: repoParams,
      body: z.object({
        cursor: z.string().max(500).optional(),
        limit: limit.optional(),
        ref: refBody,
      }),
      handler: async ({ req, reply, params, body }) => {
        const { project } = await resolveRepo(deps, req, params, 'project:write');
        const me = req.principal!.userId;
        const page = await pageByTime(
          locksQuery(db, project.id),
          { time: 'lfs_locks.locked_at', id: 'lfs_locks.id' },
          { limit: body.limit ?? 100, cursor: body.cursor },
          (row) => ({ mine: row.owner_id === me, lock: toLock(row) }),
          'asc',
        );
        return reply.type(LFS_TYPE).send({
          ours: page.items.filter((l) => l.mine).map((l) => l.lock),
          theirs: page.items.filter((l) => !l.mine).map((l) => l.lock),
          ...nextCursor(page.next_cursor),
        });
      },
    }),
    route({
      method: 'POST',
      url: '/:owner/:repo/info/lfs/locks/:id/unlock',
      summary: "Git LFS: release a lock (force: somebody else's, for the project owner or an admin)",
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: produces('{ lock }: the released lock'),
      reasons: [GIT_REASONS.lockHeldByOther],
      params: repoParams.extend({ id: z.string().max(64) }),
      body: z.object({ force: z.boolean().optional(), ref: refBody }).optional(),
      handler: async ({ req, reply, params, body }) => {
        const { project } = await resolveRepo(deps, req, params, 'project:write');
        const principal = req.principal!;
        const lock = isUuid(params.id) ? await byId(project.id, params.id) : undefined;
        if (!lock) return lfsError(reply, 404, 'lock not found');
        if (lock.owner_id !== principal.userId) {
          if (!body?.force) {
            return lfsError(
              reply,
              403,
              `the lock is held by ${lock.owner_name}; only a forced unlock releases it`,
              { reason: GIT_REASONS.lockHeldByOther },
            );
          }
          if (!(await mayForce(project, principal))) {
            return lfsError(
              reply,
              403,
              `the lock is held by ${lock.owner_name}; only the project owner or an administrator may force it`,
              { reason: GIT_REASONS.lockHeldByOther },
            );
          }
        }
        const removed = await db.transaction().execute(async (trx) => {
          const row = await trx
            .deleteFrom('lfs_locks')
            .where('id', '=', lock.id)
            .where('project_id', '=', project.id)
            .returning('id')
            .executeTakeFirst();
          if (!row) return false;
          await writeAudit(trx, {
            actor: { id: principal.userId, name: principal.userName, ip: req.ip },
            action: 'lfs.unlock',
            resourceType: 'lfs_lock',
            resourceId: lock.id,
            projectId: project.id,
            detail: { path: lock.path, owner: lock.owner_name, forced: lock.owner_id !== principal.userId },
          });
          return true;
        });
        if (!removed) return lfsError(reply, 404, 'lock not found');
        return reply.type(LFS_TYPE).send({ lock: toLock(lock) });
      },
    }),
  ];
}
