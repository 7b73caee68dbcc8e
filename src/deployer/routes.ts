import { z } from 'zod';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import type { LocalTarget } from './local-target.js';
import { servingElsewhere } from './local-target.js';
import type { OpsReposService } from './ops-repos.js';
import { DEPLOY_REASONS } from './reasons.js';
import {
  DeploymentDetailSchema,
  DeploymentDiffSchema,
  DeploymentHistoryListSchema,
  DeploymentListSchema,
  DeploymentSchema,
  OpsRepoListSchema,
  OpsRepoSchema,
} from './schemas.js';
import type { DeployerService } from './service.js';

const envParams = z.object({
  id: z.uuid(),
  env: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a DNS label (a-z, 0-9, -; at most 63)'),
});

const patchBody = z
  .object({
    image_ref: z.string().min(1).max(1000).nullable().optional(),
    artifact_id: z.uuid().nullable().optional(),
    commit_sha: z
      .string()
      .regex(/^[0-9a-f]{40}$/, 'a full commit SHA')
      .nullable()
      .optional(),
    desired_status: z.enum(['active', 'stopped']).optional(),
    values_override: z.record(z.string(), z.json()).optional(),
    ops_repo_id: z.uuid().nullable().optional(),
    auto_rollback: z.boolean().optional(),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/)
      .nullable()
      .optional(),
  })
  .strict();

const rollbackBody = z.object({ history_id: z.uuid().optional() }).strict();

const opsRepoName = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lower-case letters, digits, _ . -');
const opsRepoBody = z
  .object({
    name: opsRepoName,
    repo_url: z.string().min(1).max(2000),
    branch: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/)
      .optional(),
    path: z
      .string()
      .max(500)
      .regex(/^[A-Za-z0-9._/-]*$/)
      .refine((p) => !p.split('/').includes('..'), 'no ..')
      .optional(),
    credentials_secret: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/)
      .nullable()
      .optional(),
    sync_interval_seconds: z.number().int().min(5).max(86_400).optional(),
  })
  .strict();

const read = { permission: 'deploy:read', projectParam: 'id' } as const;
const promote = { permission: 'deploy:promote', projectParam: 'id' } as const;
const opsAdmin = { permission: 'deploy:promote', description: 'global deploy:promote (admin, ops)' } as const;
const opsRead = { permission: 'deploy:read', description: 'global deploy:read (admin, ops)' } as const;

export function deployerRoutes(
  service: DeployerService,
  ops: OpsReposService,
  local: LocalTarget,
  projectIdByName: (owner: string, name: string) => Promise<string | null>,
  instanceId: string,
): AnyRouteDef[] {
  const tags = ['deployments'];
  const proxyParams = z.object({
    owner: z.string().min(1).max(100),
    name: z.string().min(1).max(100),
    env: z.string().min(1).max(63),
    '*': z.string().max(8000).optional(),
  });
  const proxies = (['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const).flatMap((method) =>
    ['/apps/:owner/:name/:env/*', '/apps/:owner/:name/:env'].map((url) =>
      route({
        method,
        url,
        summary: 'Reverse proxy to the serving version of a locally deployed app (bodies streamed)',
        tags,
        access: 'public',
        params: proxyParams,
        // The app's own query string, passed through as it came.
        query: z.record(z.string(), z.unknown()),
        raw: true,
        bodyLimit: 100 * 1024 * 1024,
        produces: { description: "the app's own answer; 503 when no healthy version serves" },
        reasons: [DEPLOY_REASONS.notFound],
        handler: async ({ req, reply, params }) => {
          const key = `${params.owner}/${params.name}/${params.env}`;
          if (local.serves(key)) return local.proxy(req, reply, key, params['*'] ?? '');
          // A path that names no deployment is a 404; one another live instance serves is proxied
          // to the address that instance recorded; one nothing serves now (stopped, between
          // versions, its instance gone) is the proxy's 503.
          const projectId = await projectIdByName(params.owner, params.name);
          if (!projectId) throw notFound('deployment').because(DEPLOY_REASONS.notFound);
          const row = await service.find(projectId, params.env);
          return local.proxyRemote(
            req,
            reply,
            key,
            params['*'] ?? '',
            servingElsewhere(row, key, instanceId),
          );
        },
      }),
    ),
  );
  return [
    route({
      method: 'GET',
      url: '/api/projects/:id/deployments',
      summary: "The project's environments: what should run and what runs",
      tags,
      access: read,
      params: uuidParam,
      response: DeploymentListSchema,
      handler: async ({ params }) => service.listViews(params.id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/deployments/:env',
      summary: 'One environment with its recent history and live status',
      tags,
      access: read,
      params: envParams,
      response: DeploymentDetailSchema,
      reasons: [DEPLOY_REASONS.notFound],
      handler: async ({ params }) => service.get(params.id, params.env),
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/deployments/:env',
      summary:
        'Change what should run (refs, desired status, values override); an unknown environment is created when refs are given',
      tags,
      access: promote,
      params: envParams,
      body: patchBody,
      response: DeploymentSchema,
      reasons: [
        DEPLOY_REASONS.notFound,
        DEPLOY_REASONS.stateConflict,
        DEPLOY_REASONS.artifactNotFound,
        DEPLOY_REASONS.opsRepoNotFound,
      ],
      handler: async ({ params, body, actor }) => service.patch(actor, params.id, params.env, body),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/deployments/:env/rollback',
      summary: 'Roll back to the previous successful version, or to a chosen history entry',
      tags,
      access: promote,
      params: envParams,
      body: rollbackBody,
      status: 202,
      response: DeploymentSchema,
      reasons: [
        DEPLOY_REASONS.notFound,
        DEPLOY_REASONS.stateConflict,
        DEPLOY_REASONS.noPreviousVersion,
        DEPLOY_REASONS.historyNotFound,
      ],
      handler: async ({ params, body, actor }) =>
        service.rollback(actor, params.id, params.env, body.history_id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/deployments/:env/history',
      summary: 'Every deploy, rollback and stop of the environment, newest first, with actor',
      tags,
      access: read,
      params: envParams,
      query: paginationQuery,
      response: DeploymentHistoryListSchema,
      reasons: [DEPLOY_REASONS.notFound],
      handler: async ({ params, query }) => service.history(params.id, params.env, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/deployments/:env/diff',
      summary: 'The manifests the next apply would apply, rendered now, against what runs',
      tags,
      access: read,
      params: envParams,
      response: DeploymentDiffSchema,
      reasons: [DEPLOY_REASONS.notFound],
      handler: async ({ params }) => service.diff(params.id, params.env),
    }),
    route({
      method: 'GET',
      url: '/api/admin/ops-repos',
      summary: 'Registered ops repositories',
      tags,
      access: opsRead,
      query: paginationQuery,
      response: OpsRepoListSchema,
      handler: async ({ query }) => ops.list(query),
    }),
    route({
      method: 'POST',
      url: '/api/admin/ops-repos',
      summary: 'Register an ops repository (a project here, or an external http(s) git URL)',
      tags,
      access: opsAdmin,
      body: opsRepoBody,
      status: 201,
      response: OpsRepoSchema,
      reasons: [DEPLOY_REASONS.opsRepoExists, DEPLOY_REASONS.opsRepoUrlRefused],
      handler: async ({ body, actor }) => ops.create(actor, body),
    }),
    route({
      method: 'GET',
      url: '/api/admin/ops-repos/:id',
      summary: 'One ops repository with its last sync',
      tags,
      access: opsRead,
      params: uuidParam,
      response: OpsRepoSchema,
      reasons: [DEPLOY_REASONS.opsRepoNotFound],
      handler: async ({ params }) => ops.view(params.id),
    }),
    route({
      method: 'PATCH',
      url: '/api/admin/ops-repos/:id',
      summary: 'Change an ops repository',
      tags,
      access: opsAdmin,
      params: uuidParam,
      body: opsRepoBody.partial(),
      response: OpsRepoSchema,
      reasons: [
        DEPLOY_REASONS.opsRepoNotFound,
        DEPLOY_REASONS.opsRepoExists,
        DEPLOY_REASONS.opsRepoUrlRefused,
      ],
      handler: async ({ params, body, actor }) => ops.update(actor, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/ops-repos/:id',
      summary: 'Remove an ops repository (deployments using it fall back to their project deploy/ directory)',
      tags,
      access: opsAdmin,
      params: uuidParam,
      status: 204,
      reasons: [DEPLOY_REASONS.opsRepoNotFound],
      handler: async ({ params, actor }) => ops.delete(actor, params.id),
    }),
    route({
      method: 'POST',
      url: '/api/admin/ops-repos/:id/sync',
      summary:
        'Sync now (a new commit rolls out to the deployments using it); the answer carries the outcome',
      tags,
      access: opsAdmin,
      params: uuidParam,
      response: OpsRepoSchema,
      reasons: [DEPLOY_REASONS.opsRepoNotFound],
      handler: async ({ params, actor }) => {
        await ops.syncNow(actor, params.id, true);
        return ops.view(params.id);
      },
    }),
    ...proxies,
  ];
}
