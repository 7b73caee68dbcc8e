import { notFound } from '../../core/errors.js';
import { type AnyRouteDef, type RouteContext, route } from '../../core/http.js';
import { QUERY_REASONS } from '../query-lang/index.js';
import type { SavedSearchRow } from './queries.js';
import { SAVED_SEARCH_REASONS } from './reasons.js';
import {
  createSavedSearchBody,
  SavedSearchListSchema,
  SavedSearchSchema,
  savedSearchListQuery,
  savedSearchParams,
  updateSavedSearchBody,
} from './schemas.js';
import type { SavedSearchesService } from './service.js';

// biome-ignore lint/suspicious/noExplicitAny: the helper accepts every route's context.
type AnyContext = RouteContext<any, any, any>;

/**
 * Who sees a saved search: its owner (while they can still read its project), and — when shared —
 * everyone with observe:read on its project. Anyone else gets 404, as if it did not exist.
 */
async function visible(ctx: AnyContext, searches: SavedSearchesService, id: string): Promise<SavedSearchRow> {
  const row = await searches.get(id);
  const userId = ctx.requirePrincipal().userId;
  if (row.user_id !== userId && row.visibility !== 'project') throw notFound('saved search');
  if (row.project_id && !(await ctx.can('observe:read', row.project_id))) throw notFound('saved search');
  return row;
}

const actorOf = (ctx: AnyContext) => ({ ...ctx.actor, id: ctx.requirePrincipal().userId });

export function savedSearchRoutes(searches: SavedSearchesService): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/observe/saved-searches',
      summary: 'Save a search (private, or shared with everyone who can read its project)',
      tags: ['observe'],
      access: 'authenticated',
      status: 201,
      body: createSavedSearchBody,
      response: SavedSearchSchema,
      reasons: [
        QUERY_REASONS.invalidQuery,
        SAVED_SEARCH_REASONS.nameTaken,
        SAVED_SEARCH_REASONS.shareNeedsProject,
      ],
      handler: async (ctx) => {
        if (ctx.body.project_id) await ctx.authorize('observe:read', ctx.body.project_id);
        return searches.create(actorOf(ctx), ctx.body);
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/saved-searches',
      summary: "Your saved searches, or a project's (yours and the shared ones), newest first",
      tags: ['observe'],
      access: 'authenticated',
      query: savedSearchListQuery,
      response: SavedSearchListSchema,
      handler: async (ctx) => {
        if (ctx.query.project_id) await ctx.authorize('observe:read', ctx.query.project_id);
        return searches.list(ctx.requirePrincipal().userId, ctx.query);
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/saved-searches/:id',
      summary:
        'A saved search (the shareable link: opens for its owner and, when shared, the project readers)',
      tags: ['observe'],
      access: 'authenticated',
      params: savedSearchParams,
      response: SavedSearchSchema,
      handler: async (ctx) => searches.view(await visible(ctx, searches, ctx.params.id)),
    }),
    route({
      method: 'PATCH',
      url: '/api/observe/saved-searches/:id',
      summary: 'Change a saved search (its owner)',
      tags: ['observe'],
      access: 'authenticated',
      params: savedSearchParams,
      body: updateSavedSearchBody,
      response: SavedSearchSchema,
      reasons: [
        QUERY_REASONS.invalidQuery,
        SAVED_SEARCH_REASONS.nameTaken,
        SAVED_SEARCH_REASONS.shareNeedsProject,
        SAVED_SEARCH_REASONS.notOwner,
      ],
      handler: async (ctx) =>
        searches.update(actorOf(ctx), await visible(ctx, searches, ctx.params.id), ctx.body),
    }),
    route({
      method: 'DELETE',
      url: '/api/observe/saved-searches/:id',
      summary: 'Delete a saved search (its owner)',
      tags: ['observe'],
      access: 'authenticated',
      params: savedSearchParams,
      status: 204,
      reasons: [SAVED_SEARCH_REASONS.notOwner],
      handler: async (ctx) => {
        await searches.remove(actorOf(ctx), await visible(ctx, searches, ctx.params.id));
        return undefined;
      },
    }),
  ];
}
