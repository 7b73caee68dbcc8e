import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { AppError, unprocessable } from '../core/errors.js';
import { type AnyRouteDef, route } from '../core/http.js';
import type { ProjectRow, ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { repoParams, resolveRepo } from './smart-http.js';

export const LFS_TYPE = 'application/vnd.git-lfs+json';
const URL_TTL_SECONDS = 3600;
/** Largest single LFS object accepted (50 GiB). */
const MAX_OBJECT_SIZE = 50 * 1024 ** 3;

const pointer = z.object({
  oid: z.string().regex(/^[0-9a-f]{64}$/, 'oid must be a sha256 hex digest'),
  size: z.number().int().min(0).max(MAX_OBJECT_SIZE),
});

const batchBody = z.object({
  operation: z.enum(['download', 'upload']),
  transfers: z.array(z.string().max(64)).max(20).optional(),
  ref: z.object({ name: z.string().max(1024) }).optional(),
  objects: z.array(pointer).min(1).max(1000),
  hash_algo: z.string().max(32).optional(),
});

export const lfsObjectKey = (projectId: string, oid: string) =>
  `lfs/${projectId}/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;

export interface LfsDeps {
  db: Db;
  projects: ProjectsService;
  rbac: RbacService;
  objects: ObjectStore;
  publicUrl: string;
  /** Largest object an upload may announce: the presigned upload's own body limit (git_body_limit_bytes). */
  maxObjectSize: number;
}

/** Git LFS batch API (basic transfer) over the object store's presigned URLs. */
export function lfsRoutes(deps: LfsDeps): AnyRouteDef[] {
  const verifyHref = (project: ProjectRow) =>
    `${deps.publicUrl}/${project.owner_name}/${project.name}.git/info/lfs/verify`;

  return [
    route({
      method: 'POST',
      url: '/:owner/:repo/info/lfs/objects/batch',
      summary: 'Git LFS batch API (download and upload, basic transfer)',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: { contentType: LFS_TYPE, description: 'the batch answer: an action or an error per object' },
      params: repoParams,
      body: batchBody,
      handler: async ({ req, reply, params, body }) => {
        const upload = body.operation === 'upload';
        const { project } = await resolveRepo(deps, req, params, upload ? 'project:write' : 'project:read');
        if (body.transfers && !body.transfers.includes('basic')) {
          throw unprocessable('only the basic transfer adapter is supported');
        }
        if (body.hash_algo && body.hash_algo !== 'sha256') throw unprocessable('only sha256 is supported');
        const authorization = req.headers.authorization;
        const known = await deps.db
          .selectFrom('lfs_objects')
          .select(['oid', 'size', 'verified_at'])
          .where('project_id', '=', project.id)
          .where(
            'oid',
            'in',
            body.objects.map((o) => o.oid),
          )
          .execute();
        const rows = new Map(known.map((r) => [r.oid, r]));
        const objects = await Promise.all(
          body.objects.map(async ({ oid, size }) => {
            const key = lfsObjectKey(project.id, oid);
            // An object exists once `verify` checked its bytes against the oid (verified_at), and only
            // then: bytes someone PUT under an oid are nothing until they hash to it.
            const row = rows.get(oid);
            const stored = row?.verified_at ? await deps.objects.head(key) : undefined;
            const verifiedSize = stored && stored.size === row!.size ? row!.size : undefined;
            if (!upload) {
              if (verifiedSize === undefined)
                return { oid, size, error: { code: 404, message: 'object does not exist' } };
              if (verifiedSize !== size)
                return {
                  oid,
                  size,
                  error: { code: 422, message: `object size is ${verifiedSize}, not ${size}` },
                };
              return {
                oid,
                size,
                authenticated: true,
                actions: {
                  download: {
                    href: await deps.objects.presignGet(key, URL_TTL_SECONDS),
                    expires_in: URL_TTL_SECONDS,
                  },
                },
              };
            }
            if (verifiedSize === size) return { oid, size, authenticated: true };
            if (verifiedSize !== undefined) {
              // The verified bytes hash to this oid, so they are the object: another size is wrong.
              return {
                oid,
                size,
                error: { code: 422, message: `object size is ${verifiedSize}, not ${size}` },
              };
            }
            if (size > deps.maxObjectSize) {
              return {
                oid,
                size,
                error: {
                  code: 422,
                  message: `object is larger than the ${deps.maxObjectSize}-byte upload limit`,
                },
              };
            }
            await deps.db
              .insertInto('lfs_objects')
              .values({ project_id: project.id, oid, size })
              .onConflict((oc) => oc.columns(['project_id', 'oid']).doUpdateSet({ size, verified_at: null }))
              .execute();
            // The URL is bound to the oid and size: the store refuses other bytes before they are stored.
            const presigned = await deps.objects.presignPut(key, URL_TTL_SECONDS, { sha256: oid, size });
            return {
              oid,
              size,
              authenticated: true,
              actions: {
                upload: {
                  href: presigned.url,
                  ...(Object.keys(presigned.headers).length > 0 ? { header: presigned.headers } : {}),
                  expires_in: URL_TTL_SECONDS,
                },
                verify: {
                  href: verifyHref(project),
                  expires_in: URL_TTL_SECONDS,
                  ...(authorization ? { header: { Authorization: authorization } } : {}),
                },
              },
            };
          }),
        );
        return reply.type(LFS_TYPE).send({ transfer: 'basic', objects, hash_algo: 'sha256' });
      },
    }),
    route({
      method: 'POST',
      url: '/:owner/:repo/info/lfs/verify',
      summary: 'Git LFS verify: confirms an upload landed with the right size and content',
      tags: ['git'],
      access: 'public',
      raw: true,
      produces: { contentType: LFS_TYPE, description: '{ message: "verified" }' },
      params: repoParams,
      body: pointer,
      handler: async ({ req, reply, params, body }) => {
        const { project } = await resolveRepo(deps, req, params, 'project:write');
        const key = lfsObjectKey(project.id, body.oid);
        const stored = await deps.objects.get(key);
        if (!stored) throw new AppError(404, 'not_found', 'object was not uploaded');
        const hash = createHash('sha256');
        for await (const chunk of stored.body) hash.update(chunk as Buffer);
        if (hash.digest('hex') !== body.oid) {
          // Bytes that do not hash to their oid are nobody's object (a store that does not enforce
          // the presigned checksum let them in): removed, so the real upload can take the key.
          await deps.objects.delete(key);
          await deps.db
            .updateTable('lfs_objects')
            .set({ verified_at: null })
            .where('project_id', '=', project.id)
            .where('oid', '=', body.oid)
            .execute();
          throw unprocessable('uploaded content does not match its oid; upload it again');
        }
        if (stored.info.size !== body.size) {
          throw unprocessable(`uploaded object is ${stored.info.size} bytes, expected ${body.size}`);
        }
        await deps.db.transaction().execute(async (trx) => {
          await trx
            .insertInto('lfs_objects')
            .values({ project_id: project.id, oid: body.oid, size: body.size, verified_at: sql<Date>`now()` })
            .onConflict((oc) =>
              oc
                .columns(['project_id', 'oid'])
                .doUpdateSet({ size: body.size, verified_at: sql<Date>`now()` }),
            )
            .execute();
          await writeAudit(trx, {
            actor: { id: req.principal!.userId, name: req.principal!.userName, ip: req.ip },
            action: 'lfs.upload',
            resourceType: 'lfs_object',
            resourceId: body.oid,
            projectId: project.id,
            detail: { size: body.size },
          });
        });
        return reply.type(LFS_TYPE).send({ message: 'verified' });
      },
    }),
  ];
}
