import { type Actor, type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import { ISSUE_REASONS } from './reasons.js';
import {
  commentBodySchema,
  commentParams,
  createIssueBody,
  IssueCommentListSchema,
  IssueCommentSchema,
  IssueListSchema,
  IssueSchema,
  issueParams,
  issueQuery,
  updateIssueBody,
} from './schemas.js';
import type { CommentTarget, IssuesService, UserActor } from './service.js';

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
      body: createIssueBody,
      response: IssueSchema,
      reasons: [ISSUE_REASONS.notAssignable],
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
      response: IssueListSchema,
      handler: async ({ params, query }) => issues.list(params.id, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/issues/:number',
      summary: 'An issue by its number',
      tags: ['issues'],
      access: read,
      params: issueParams,
      response: IssueSchema,
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
      body: updateIssueBody,
      response: IssueSchema,
      reasons: [ISSUE_REASONS.notAssignable, ISSUE_REASONS.invalidTransition],
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
        body: commentBodySchema,
        response: IssueCommentSchema,
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
        response: IssueCommentListSchema,
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
        body: commentBodySchema,
        response: IssueCommentSchema,
        reasons: [ISSUE_REASONS.notCommentAuthor],
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
        status: 204,
        params: commentParams,
        reasons: [ISSUE_REASONS.notCommentAuthor],
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
