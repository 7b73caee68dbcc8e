import { z } from 'zod';
import { type Actor, type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import { issueStatuses } from '../store/schema.js';
import type { CommentTarget, IssuesService, UserActor } from './service.js';

const INT4_MAX = 2_147_483_647;
const MAX_LABELS = 20;
const BODY_MAX = 65_536;

/** Issue and merge request numbers in paths (an int4 column). */
const numberParam = z.coerce.number().int().min(1).max(INT4_MAX);
const issueParams = z.object({ id: z.uuid(), number: numberParam });
const commentParams = issueParams.extend({ commentId: z.uuid() });

const title = z.string().trim().min(1).max(255);
const issueBody = z.string().max(BODY_MAX);
const commentBody = z
  .string()
  .min(1)
  .max(BODY_MAX)
  .refine((s) => s.trim().length > 0, 'must not be blank');

// biome-ignore lint/suspicious/noControlCharactersInRegex: labels are shown in lists and filters.
const CONTROL = /[\u0000-\u001f\u007f]/;
const label = z
  .string()
  .trim()
  .min(1)
  .max(50)
  .refine((s) => !CONTROL.test(s), 'must not contain control characters');
/** A label set: trimmed, de-duplicated (first occurrence keeps its place), at most 20 distinct. */
const labels = z
  .array(label)
  .max(100)
  .refine((a) => new Set(a).size <= MAX_LABELS, `at most ${MAX_LABELS} distinct labels`)
  .transform((a) => [...new Set(a)]);

const issueQuery = paginationQuery.extend({
  status: z.enum(['open', 'closed', 'all']).default('open'),
  label: z.string().trim().min(1).max(50).optional(),
  assignee: z.string().min(1).max(63).optional(),
  author: z.string().min(1).max(63).optional(),
  q: z.string().max(200).optional(),
});

const read = { permission: 'project:read', projectParam: 'id' } as const;
const write = { permission: 'project:write', projectParam: 'id' } as const;

/** Mutations always have a signed-in caller (project:write is never granted to anonymous). */
function userActor(ctx: { actor: Actor; requirePrincipal(): { userId: string } }): UserActor {
  return { ...ctx.actor, id: ctx.requirePrincipal().userId };
}

export function issueRoutes(issues: IssuesService): AnyRouteDef[] {
  const commentTargets: { target: CommentTarget; segment: string; noun: string; tag: string }[] = [
    { target: 'issue', segment: 'issues', noun: 'an issue', tag: 'issues' },
    { target: 'merge_request', segment: 'merge-requests', noun: 'a merge request', tag: 'merge-requests' },
  ];

  return [
    route({
      method: 'POST',
      url: '/api/projects/:id/issues',
      summary: 'Open an issue (numbered per project)',
      tags: ['issues'],
      access: write,
      status: 201,
      params: uuidParam,
      body: z.object({
        title,
        body: issueBody.optional(),
        labels: labels.optional(),
        assignee_id: z.uuid().nullish(),
      }),
      handler: async (ctx) => issues.create(userActor(ctx), ctx.params.id, ctx.body),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/issues',
      summary:
        'Issues of a project, newest first (filters: status, label, assignee (name or none), author, q)',
      tags: ['issues'],
      access: read,
      params: uuidParam,
      query: issueQuery,
      handler: async ({ params, query }) => issues.list(params.id, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/issues/:number',
      summary: 'An issue by its number',
      tags: ['issues'],
      access: read,
      params: issueParams,
      handler: async ({ params }) => issues.get(params.id, params.number),
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/issues/:number',
      summary:
        'Edit, close or reopen an issue; set its labels or assignee (who must be able to read the project)',
      tags: ['issues'],
      access: write,
      params: issueParams,
      body: z.object({
        title: title.optional(),
        body: issueBody.optional(),
        status: z.enum(issueStatuses).optional(),
        labels: labels.optional(),
        assignee_id: z.uuid().nullable().optional(),
      }),
      handler: async (ctx) => issues.update(userActor(ctx), ctx.params.id, ctx.params.number, ctx.body),
    }),
    ...commentTargets.flatMap(({ target, segment, noun, tag }) => [
      route({
        method: 'POST',
        url: `/api/projects/:id/${segment}/:number/comments`,
        summary: `Comment on ${noun} (markdown, stored raw)`,
        tags: [tag],
        access: write,
        status: 201,
        params: issueParams,
        body: z.object({ body: commentBody }),
        handler: async (ctx) =>
          issues.addComment(
            userActor(ctx),
            { target, projectId: ctx.params.id, number: ctx.params.number },
            ctx.body.body,
          ),
      }),
      route({
        method: 'GET',
        url: `/api/projects/:id/${segment}/:number/comments`,
        summary: `Comments on ${noun}, oldest first`,
        tags: [tag],
        access: read,
        params: issueParams,
        query: paginationQuery,
        handler: async ({ params, query }) =>
          issues.listComments({ target, projectId: params.id, number: params.number }, query),
      }),
      route({
        method: 'PATCH',
        url: `/api/projects/:id/${segment}/:number/comments/:commentId`,
        summary: `Edit a comment on ${noun} (its author or an admin)`,
        tags: [tag],
        access: write,
        params: commentParams,
        body: z.object({ body: commentBody }),
        handler: async (ctx) =>
          issues.editComment(
            userActor(ctx),
            { target, projectId: ctx.params.id, number: ctx.params.number },
            ctx.params.commentId,
            ctx.body.body,
            await ctx.can('admin:users'),
          ),
      }),
      route({
        method: 'DELETE',
        url: `/api/projects/:id/${segment}/:number/comments/:commentId`,
        summary: `Delete a comment on ${noun} (its author or an admin)`,
        tags: [tag],
        access: write,
        params: commentParams,
        handler: async (ctx) =>
          issues.deleteComment(
            userActor(ctx),
            { target, projectId: ctx.params.id, number: ctx.params.number },
            ctx.params.commentId,
            await ctx.can('admin:users'),
          ),
      }),
    ]),
  ];
}
