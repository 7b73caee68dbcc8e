import { sql } from 'kysely';
import { escapeLike } from '../core/validation.js';
import type { DbOrTx } from '../store/db.js';
import type { IssueStatus } from '../store/schema.js';

/**
 * The SQL of `issues` and `comments` (owned by this module). `issues.status` is written only by
 * transitions.ts. User names (author, assignee filters) are compared ignoring case, as every user
 * lookup is.
 */

export function selectIssues(db: DbOrTx) {
  return db
    .selectFrom('issues as i')
    .innerJoin('projects as p', 'p.id', 'i.project_id')
    .innerJoin('users as o', 'o.id', 'p.owner_id')
    .innerJoin('users as a', 'a.id', 'i.author_id')
    .leftJoin('users as s', 's.id', 'i.assignee_id')
    .select([
      'i.id',
      'i.project_id',
      'i.number',
      'i.title',
      'i.body',
      'i.status',
      'i.labels',
      'i.author_id',
      'a.name as author_name',
      'i.assignee_id',
      's.name as assignee_name',
      'i.closed_at',
      'i.closed_by',
      'i.created_at',
      'i.updated_at',
      'p.name as project_name',
      'o.name as project_owner',
      sql<number>`(select count(*)::int from comments c where c.issue_id = i.id)`.as('comment_count'),
    ]);
}

export type IssueRow = Awaited<ReturnType<ReturnType<typeof selectIssues>['executeTakeFirstOrThrow']>>;

export function findIssue(db: DbOrTx, projectId: string, number: number): Promise<IssueRow | undefined> {
  return selectIssues(db)
    .where('i.project_id', '=', projectId)
    .where('i.number', '=', number)
    .executeTakeFirst();
}

export function getIssueById(db: DbOrTx, id: string): Promise<IssueRow> {
  return selectIssues(db).where('i.id', '=', id).executeTakeFirstOrThrow();
}

/** The issue's own row, locked for the rest of the transaction. */
export function lockIssue(trx: DbOrTx, projectId: string, number: number) {
  return trx
    .selectFrom('issues')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('number', '=', number)
    .forUpdate()
    .executeTakeFirst();
}

export async function insertIssue(
  trx: DbOrTx,
  values: {
    project_id: string;
    number: number;
    title: string;
    body: string;
    labels: string[];
    author_id: string;
    assignee_id: string | null;
  },
): Promise<string> {
  const row = await trx.insertInto('issues').values(values).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

/** The editable fields; the status has its own writer (transitions.ts). */
export type IssueFieldChanges = Partial<{
  title: string;
  body: string;
  labels: string[];
  assignee_id: string | null;
}>;

export async function updateIssueFields(trx: DbOrTx, id: string, set: IssueFieldChanges): Promise<void> {
  await trx.updateTable('issues').set(set).where('id', '=', id).execute();
}

export interface IssueListFilter {
  status: IssueStatus | 'all';
  label?: string;
  /** Assignee's user name, or `none` for unassigned issues. */
  assignee?: string;
  author?: string;
  q?: string;
  /** Only issues numbered below this one (the list's cursor). */
  before?: number;
}

const lowerEq = (column: string, value: string) => sql<boolean>`lower(${sql.ref(column)}) = lower(${value})`;

/** Issues of a project, newest (highest number) first, `limit` of them. */
export function listIssues(db: DbOrTx, projectId: string, f: IssueListFilter, limit: number) {
  let q = selectIssues(db).where('i.project_id', '=', projectId).orderBy('i.number', 'desc').limit(limit);
  if (f.status !== 'all') q = q.where('i.status', '=', f.status);
  if (f.label !== undefined) q = q.where(sql<boolean>`i.labels @> array[${f.label}]::text[]`);
  if (f.assignee === 'none') q = q.where('i.assignee_id', 'is', null);
  else if (f.assignee !== undefined) q = q.where(lowerEq('s.name', f.assignee));
  if (f.author !== undefined) q = q.where(lowerEq('a.name', f.author));
  if (f.q) {
    const like = `%${escapeLike(f.q)}%`;
    q = q.where((eb) => eb.or([eb('i.title', 'ilike', like), eb('i.body', 'ilike', like)]));
  }
  if (f.before !== undefined) q = q.where('i.number', '<', f.before);
  return q.execute();
}

// ---------------------------------------------------------------- comments

export function selectComments(db: DbOrTx) {
  return db
    .selectFrom('comments as c')
    .innerJoin('users as a', 'a.id', 'c.author_id')
    .select([
      'c.id',
      'c.project_id',
      'c.issue_id',
      'c.mr_id',
      'c.author_id',
      'a.name as author_name',
      'c.body',
      'c.created_at',
      'c.updated_at',
    ]);
}

export type CommentRow = Awaited<ReturnType<ReturnType<typeof selectComments>['executeTakeFirstOrThrow']>>;

export function getCommentById(db: DbOrTx, id: string): Promise<CommentRow> {
  return selectComments(db).where('c.id', '=', id).executeTakeFirstOrThrow();
}

export type CommentTarget = 'issue' | 'merge_request';

const parentColumn = (target: CommentTarget) => (target === 'issue' ? 'issue_id' : 'mr_id');

/** The comments of one issue or merge request, before the page ending (`pageByTime`, oldest first). */
export function commentsOf(db: DbOrTx, target: CommentTarget, parentId: string) {
  return selectComments(db).where(target === 'issue' ? 'c.issue_id' : 'c.mr_id', '=', parentId);
}

export async function insertComment(
  trx: DbOrTx,
  values: { project_id: string; target: CommentTarget; parent_id: string; author_id: string; body: string },
): Promise<string> {
  const row = await trx
    .insertInto('comments')
    .values({
      project_id: values.project_id,
      issue_id: values.target === 'issue' ? values.parent_id : null,
      mr_id: values.target === 'merge_request' ? values.parent_id : null,
      author_id: values.author_id,
      body: values.body,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The comment on that parent, locked for the rest of the transaction. */
export function lockComment(trx: DbOrTx, target: CommentTarget, parentId: string, commentId: string) {
  return trx
    .selectFrom('comments')
    .select(['id', 'author_id'])
    .where('id', '=', commentId)
    .where(parentColumn(target), '=', parentId)
    .forUpdate()
    .executeTakeFirst();
}

export async function updateCommentBody(trx: DbOrTx, id: string, body: string): Promise<void> {
  await trx.updateTable('comments').set({ body }).where('id', '=', id).execute();
}

export async function deleteComment(trx: DbOrTx, id: string): Promise<void> {
  await trx.deleteFrom('comments').where('id', '=', id).execute();
}

/**
 * The merge request a comment hangs on. Comments are this module's table; the merge request is only
 * read, for the comment's parent and event payload.
 */
export function findMergeRequestRef(db: DbOrTx, projectId: string, number: number) {
  return db
    .selectFrom('merge_requests as m')
    .innerJoin('projects as p', 'p.id', 'm.project_id')
    .innerJoin('users as o', 'o.id', 'p.owner_id')
    .select(['m.id', 'm.project_id', 'm.number', 'm.title', 'm.status', 'p.name', 'o.name as owner'])
    .where('m.project_id', '=', projectId)
    .where('m.number', '=', number)
    .executeTakeFirst();
}
