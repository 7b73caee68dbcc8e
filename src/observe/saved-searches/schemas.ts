import { z } from 'zod';
import { paginationQuery } from '../../core/http.js';
import type { ViewOf } from '../../projects/index.js';
import { savedSearchSignals, savedSearchVisibilities } from '../../store/schema.js';

const timestamp = z.string().describe('ISO 8601');

export const savedSearchParams = z.object({ id: z.uuid() });

const filters = z
  .record(
    z.string().max(100),
    z.union([z.string().max(1000), z.number(), z.boolean(), z.null(), z.array(z.string().max(1000)).max(50)]),
  )
  .refine((o) => Object.keys(o).length <= 50, 'at most 50 filters')
  .describe('the search parameters besides the query (level, service, time range, …) as the UI keeps them');

export const createSavedSearchBody = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  project_id: z.uuid().nullish().describe('the project searched; required to share'),
  signal: z.enum(savedSearchSignals),
  query: z
    .string()
    .max(4000)
    .describe(
      'logs/traces: a filter such as `{level>="warn"}`; metrics: an aggregation such as `rate(x[1m])`',
    ),
  filters: filters.optional(),
  visibility: z
    .enum(savedSearchVisibilities)
    .optional()
    .describe(
      'private (default): only you; project: everyone who can read the project, by link or in the list',
    ),
});
export type CreateSavedSearchInput = z.output<typeof createSavedSearchBody>;

export const updateSavedSearchBody = createSavedSearchBody.omit({ project_id: true, signal: true }).partial();
export type UpdateSavedSearchInput = z.output<typeof updateSavedSearchBody>;

export const savedSearchListQuery = paginationQuery.extend({
  project_id: z
    .uuid()
    .optional()
    .describe("that project's searches you may see (yours and shared ones); omitted: yours"),
  signal: z.enum(savedSearchSignals).optional(),
});
export type SavedSearchFilter = z.output<typeof savedSearchListQuery>;

export const SavedSearchSchema = z
  .object({
    id: z.uuid(),
    user_id: z.uuid(),
    owner: z.string(),
    project_id: z.uuid().nullable(),
    name: z.string(),
    description: z.string(),
    signal: z.enum(savedSearchSignals),
    query: z.string(),
    filters: z.record(z.string(), z.unknown()),
    visibility: z.enum(savedSearchVisibilities),
    link: z.string().describe('the shareable link (opens for whoever may see the search)'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'SavedSearch' });
export type SavedSearchView = ViewOf<z.output<typeof SavedSearchSchema>>;

export const SavedSearchListSchema = z
  .object({ items: z.array(SavedSearchSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'SavedSearchList' });
