import { z } from 'zod';
import { paginationQuery } from '../core/http.js';
import type { ViewOf } from '../projects/index.js';
import { issueStatuses } from '../store/schema.js';
import type { CommentRow, IssueRow } from './queries.js';

/**
 * Request and response schemas of the issue and comment routes; the service's views are derived
 * from the response schemas, so the handlers and the API document cannot drift.
 */

const INT4_MAX = 2_147_483_647;
const MAX_LABELS = 20;
const BODY_MAX = 65_536;
const timestamp = z.string().describe('ISO 8601');

/** Issue and merge request numbers in paths (an int4 column). */
const numberParam = z.coerce.number().int().min(1).max(INT4_MAX);
export const issueParams = z.object({ id: z.uuid(), number: numberParam });
export const commentParams = issueParams.extend({ commentId: z.uuid() });

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

export const issueQuery = paginationQuery.extend({
  status: z.enum(['open', 'closed', 'all']).default('open'),
  label: z.string().trim().min(1).max(50).optional(),
  assignee: z.string().min(1).max(63).optional(),
  author: z.string().min(1).max(63).optional(),
  q: z.string().max(200).optional(),
});
export type IssueFilter = z.output<typeof issueQuery>;

export const createIssueBody = z.object({
  title,
  body: issueBody.optional(),
  labels: labels.optional(),
  assignee_id: z.uuid().nullish(),
});
export type CreateIssueInput = z.output<typeof createIssueBody>;

export const updateIssueBody = z.object({
  title: title.optional(),
  body: issueBody.optional(),
  status: z.enum(issueStatuses).optional(),
  labels: labels.optional(),
  assignee_id: z.uuid().nullable().optional(),
});
export type UpdateIssueInput = z.output<typeof updateIssueBody>;

export const commentBodySchema = z.object({ body: commentBody });

export const IssueSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    number: z.number().int().describe('the issue’s number in its project'),
    title: z.string(),
    body: z.string().describe('markdown, stored raw'),
    status: z.enum(issueStatuses),
    labels: z.array(z.string()),
    author_id: z.uuid(),
    author: z.string().describe('user name of the author'),
    assignee_id: z.uuid().nullable(),
    assignee: z.string().nullable().describe('user name of the assignee'),
    closed_at: timestamp.nullable(),
    closed_by: z.uuid().nullable(),
    comment_count: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Issue' });
export type IssueView = ViewOf<z.output<typeof IssueSchema>>;

export const IssueListSchema = z
  .object({ items: z.array(IssueSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'IssueList' });

export const IssueCommentSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    issue_id: z.uuid().nullable().describe('set on comments of an issue'),
    merge_request_id: z.uuid().nullable().describe('set on comments of a merge request'),
    author_id: z.uuid(),
    author: z.string(),
    body: z.string().describe('markdown, stored raw'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'IssueComment' });
export type CommentView = ViewOf<z.output<typeof IssueCommentSchema>>;

export const IssueCommentListSchema = z
  .object({ items: z.array(IssueCommentSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'IssueCommentList' });

export function issueView(r: IssueRow): IssueView {
  return {
    id: r.id,
    project_id: r.project_id,
    number: r.number,
    title: r.title,
    body: r.body,
    status: r.status,
    labels: r.labels,
    author_id: r.author_id,
    author: r.author_name,
    assignee_id: r.assignee_id,
    assignee: r.assignee_name,
    closed_at: r.closed_at,
    closed_by: r.closed_by,
    comment_count: r.comment_count,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

export function commentView(r: CommentRow): CommentView {
  return {
    id: r.id,
    project_id: r.project_id,
    issue_id: r.issue_id,
    merge_request_id: r.mr_id,
    author_id: r.author_id,
    author: r.author_name,
    body: r.body,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}
