import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route } from '../core/http.js';
import { isValidBranchName } from '../projects/index.js';
import { MR_REASONS as R } from './reasons.js';
import {
  MergeRequestDetailSchema,
  MergeRequestListSchema,
  MergeRequestReviewSchema,
  MergeRequestSchema,
} from './schemas.js';
import type { MergeRequestsService } from './service.js';

const branch = z.string().min(1).max(255).refine(isValidBranchName, 'not a valid branch name');
const title = z.string().trim().min(1).max(255);
const body = z.string().max(65_536);
const mrParams = z.object({ id: z.uuid(), number: z.coerce.number().int().min(1).max(2_147_483_647) });
const read = { permission: 'project:read', projectParam: 'id' } as const;
const write = { permission: 'project:write', projectParam: 'id' } as const;

export function mergeRequestRoutes(service: MergeRequestsService): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/projects/:id/merge-requests',
      summary: 'Open a merge request (both branches must exist and differ; one open MR per pair)',
      tags: ['merge-requests'],
      access: write,
      status: 201,
      response: MergeRequestSchema,
      reasons: [R.projectArchived, R.alreadyOpen],
      params: z.object({ id: z.uuid() }),
      body: z.object({
        source_branch: branch,
        target_branch: branch,
        title,
        body: body.optional(),
        reviewer_ids: z.array(z.uuid()).max(20).optional(),
      }),
      handler: async ({ params, body, actor, requirePrincipal }) =>
        service.create(actor, requirePrincipal(), params.id, body),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/merge-requests',
      summary: 'Merge requests (filters: status, author, target, source, q)',
      tags: ['merge-requests'],
      access: read,
      response: MergeRequestListSchema,
      params: z.object({ id: z.uuid() }),
      query: paginationQuery.extend({
        status: z.enum(['open', 'merged', 'closed', 'all']).optional(),
        author: z.string().max(63).optional(),
        target: z.string().max(255).optional(),
        source: z.string().max(255).optional(),
        q: z.string().max(200).optional(),
      }),
      handler: async ({ params, query }) => service.list(params.id, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/merge-requests/:number',
      summary:
        'A merge request with reviews, comments, commits, diff stats, approvals, checks, and whether it can be merged now (`mergeable`, and the `blockers`: the refusals a merge would answer with, first one first)',
      tags: ['merge-requests'],
      access: read,
      response: MergeRequestDetailSchema,
      params: mrParams,
      handler: async ({ params, can }) =>
        service.detail(params.id, params.number, (permission, projectId) => can(permission, projectId)),
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/merge-requests/:number',
      summary: 'Edit title/body, close or reopen a merge request',
      tags: ['merge-requests'],
      access: write,
      response: MergeRequestSchema,
      reasons: [R.alreadyMerged, R.sourceBranchMissing],
      params: mrParams,
      body: z
        .object({
          title: title.optional(),
          body: body.optional(),
          status: z.enum(['open', 'closed']).optional(),
        })
        .refine((b) => Object.keys(b).length > 0, 'nothing to change'),
      handler: async ({ params, body, actor, requirePrincipal }) =>
        service.update(actor, requirePrincipal(), params.id, params.number, body),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/merge-requests/:number/reviews',
      summary: 'Review a merge request: approve, request_changes or comment (on the current head)',
      tags: ['merge-requests'],
      access: write,
      status: 201,
      response: MergeRequestReviewSchema,
      reasons: [R.notOpen, R.selfReview],
      params: mrParams,
      body: z.object({ verdict: z.enum(['approve', 'request_changes', 'comment']), body: body.optional() }),
      handler: async ({ params, body, actor, requirePrincipal }) =>
        service.review(actor, requirePrincipal(), params.id, params.number, body),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/merge-requests/:number/merge',
      summary:
        'Merge (strategy merge = --no-ff commit (default), squash, fast_forward); refused with 409 and the first of the blockers the detail lists (branch protection, conflicts listing the files, …)',
      tags: ['merge-requests'],
      access: write,
      response: MergeRequestSchema,
      reasons: [
        R.projectArchived,
        R.notOpen,
        R.sourceBranchMissing,
        R.headChanged,
        R.approvalsRequired,
        R.changesRequested,
        R.pipelineRequired,
        R.pipelinePending,
        R.pipelineFailed,
        R.checkFailed,
        R.protectedBranch,
        R.targetBranchMissing,
        R.nothingToMerge,
        R.notFastForward,
        R.mergeConflict,
        R.targetMoved,
      ],
      params: mrParams,
      body: z
        .object({
          strategy: z.enum(['merge', 'squash', 'fast_forward']).optional(),
          message: z.string().trim().min(1).max(65_536).optional(),
          expected_head_sha: z
            .string()
            .regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'a full commit id')
            .optional(),
        })
        .optional(),
      handler: async ({ params, body, actor, requirePrincipal }) =>
        service.merge(actor, requirePrincipal(), params.id, params.number, body ?? {}),
    }),
  ];
}
