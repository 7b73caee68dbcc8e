import { badRequest, notFound } from '../core/errors.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import { escapeLike } from '../core/validation.js';
import type { DbOrTx } from '../store/db.js';
import type { MergeRequestStatus, MergeStrategy } from '../store/schema.js';
import type { Identity } from './git.js';

/**
 * The SQL of the merge request tables (merge_requests, mr_reviewers, mr_reviews, and the MR side of
 * comments). Names of people come from `users` as read-only joins of these views: the auth module
 * exports no lookup for them, and a join keeps a list one query.
 */

export interface MergeRequestView {
  id: string;
  project_id: string;
  number: number;
  title: string;
  body: string;
  status: MergeRequestStatus;
  source_branch: string;
  target_branch: string;
  author: { id: string; name: string };
  head_sha: string | null;
  base_sha: string | null;
  merge_strategy: MergeStrategy | null;
  merge_sha: string | null;
  merged_by: { id: string; name: string } | null;
  merged_at: Date | null;
  closed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export function selectMrs(db: DbOrTx) {
  return db
    .selectFrom('merge_requests as m')
    .innerJoin('users as a', 'a.id', 'm.author_id')
    .leftJoin('users as mb', 'mb.id', 'm.merged_by')
    .select([
      'm.id',
      'm.project_id',
      'm.number',
      'm.title',
      'm.body',
      'm.status',
      'm.source_branch',
      'm.target_branch',
      'm.author_id',
      'a.name as author_name',
      'm.head_sha',
      'm.base_sha',
      'm.merge_strategy',
      'm.merge_sha',
      'm.merged_by',
      'mb.name as merged_by_name',
      'm.merged_at',
      'm.closed_at',
      'm.created_at',
      'm.updated_at',
    ]);
}

export type MrRow = Awaited<ReturnType<ReturnType<typeof selectMrs>['executeTakeFirstOrThrow']>>;

export function mrView(r: MrRow): MergeRequestView {
  return {
    id: r.id,
    project_id: r.project_id,
    number: r.number,
    title: r.title,
    body: r.body,
    status: r.status,
    source_branch: r.source_branch,
    target_branch: r.target_branch,
    author: { id: r.author_id, name: r.author_name },
    head_sha: r.head_sha,
    base_sha: r.base_sha,
    merge_strategy: r.merge_strategy,
    merge_sha: r.merge_sha,
    merged_by: r.merged_by ? { id: r.merged_by, name: r.merged_by_name ?? '' } : null,
    merged_at: r.merged_at,
    closed_at: r.closed_at,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

export async function findMr(db: DbOrTx, projectId: string, number: number): Promise<MrRow> {
  const row = await selectMrs(db)
    .where('m.project_id', '=', projectId)
    .where('m.number', '=', number)
    .executeTakeFirst();
  if (!row) throw notFound('merge request');
  return row;
}

export interface ListFilter {
  limit: number;
  cursor?: string;
  status?: MergeRequestStatus | 'all';
  author?: string;
  target?: string;
  source?: string;
  q?: string;
}

/**
 * Newest first by number (not by time, so `pageByTime` does not apply): the cursor is the number
 * of the last item.
 */
export async function listMrs(db: DbOrTx, projectId: string, f: ListFilter): Promise<Page<MergeRequestView>> {
  let q = selectMrs(db)
    .where('m.project_id', '=', projectId)
    .orderBy('m.number', 'desc')
    .limit(f.limit + 1);
  const status = f.status ?? 'open';
  if (status !== 'all') q = q.where('m.status', '=', status);
  if (f.author) q = q.where('a.name', '=', f.author);
  if (f.target) q = q.where('m.target_branch', '=', f.target);
  if (f.source) q = q.where('m.source_branch', '=', f.source);
  if (f.q) {
    const like = `%${escapeLike(f.q)}%`;
    q = q.where((eb) => eb.or([eb('m.title', 'ilike', like), eb('m.body', 'ilike', like)]));
  }
  if (f.cursor) {
    const [n] = decodeCursor(f.cursor, 1);
    if (!/^[1-9]\d{0,9}$/.test(n!)) {
      throw badRequest('invalid cursor', [
        { path: 'query.cursor', message: 'not a cursor returned by this API' },
      ]);
    }
    q = q.where('m.number', '<', Number(n));
  }
  const rows = await q.execute();
  return toPage(rows, f.limit, (r) => [String(r.number)], mrView);
}

/** The open merge request for a source and target, if any (one per pair). */
export async function openMrFor(db: DbOrTx, projectId: string, source: string, target: string) {
  return db
    .selectFrom('merge_requests')
    .select('number')
    .where('project_id', '=', projectId)
    .where('source_branch', '=', source)
    .where('target_branch', '=', target)
    .where('status', '=', 'open')
    .executeTakeFirst();
}

/** Open merge requests from or into a branch (what a push to it concerns). */
export async function openMrsTouching(db: DbOrTx, projectId: string, branch: string) {
  return db
    .selectFrom('merge_requests')
    .select(['id', 'number', 'title', 'source_branch', 'target_branch', 'head_sha', 'author_id'])
    .where('project_id', '=', projectId)
    .where('status', '=', 'open')
    .where((eb) => eb.or([eb('source_branch', '=', branch), eb('target_branch', '=', branch)]))
    .execute();
}

export interface Approvals {
  approved_by: string[];
  changes_requested_by: string[];
}

/**
 * Approvals that count: the latest review of each reviewer other than the author, given on the
 * current head (a push makes earlier approvals stale).
 */
export async function currentApprovals(
  db: DbOrTx,
  mrId: string,
  authorId: string,
  headSha: string | null,
): Promise<Approvals> {
  const reviews = await db
    .selectFrom('mr_reviews as r')
    .innerJoin('users as u', 'u.id', 'r.reviewer_id')
    .select(['r.reviewer_id', 'u.name', 'r.verdict', 'r.commit_sha', 'r.created_at'])
    .where('r.mr_id', '=', mrId)
    .where('r.verdict', '!=', 'comment')
    .orderBy('r.created_at', 'asc')
    .execute();
  const latest = new Map<string, (typeof reviews)[number]>();
  for (const r of reviews) if (r.reviewer_id !== authorId) latest.set(r.reviewer_id, r);
  const current = [...latest.values()].filter((r) => r.commit_sha === headSha);
  return {
    approved_by: current.filter((r) => r.verdict === 'approve').map((r) => r.name),
    changes_requested_by: current.filter((r) => r.verdict === 'request_changes').map((r) => r.name),
  };
}

export function listReviews(db: DbOrTx, mrId: string) {
  return db
    .selectFrom('mr_reviews as r')
    .innerJoin('users as u', 'u.id', 'r.reviewer_id')
    .select([
      'r.id',
      'r.reviewer_id',
      'u.name as reviewer_name',
      'r.verdict',
      'r.body',
      'r.commit_sha',
      'r.created_at',
    ])
    .where('r.mr_id', '=', mrId)
    .orderBy('r.created_at', 'asc')
    .limit(500)
    .execute();
}

export function listComments(db: DbOrTx, mrId: string) {
  return db
    .selectFrom('comments as c')
    .innerJoin('users as u', 'u.id', 'c.author_id')
    .select(['c.id', 'c.author_id', 'u.name as author_name', 'c.body', 'c.created_at', 'c.updated_at'])
    .where('c.mr_id', '=', mrId)
    .orderBy('c.created_at', 'asc')
    .limit(500)
    .execute();
}

export function listReviewers(db: DbOrTx, mrId: string) {
  return db
    .selectFrom('mr_reviewers as r')
    .innerJoin('users as u', 'u.id', 'r.user_id')
    .select(['u.id', 'u.name'])
    .where('r.mr_id', '=', mrId)
    .orderBy('u.name')
    .execute();
}

/** Name and e-mail a user signs merge commits with (read-only, like the joins above). */
export async function commitIdentity(db: DbOrTx, userId: string): Promise<Identity> {
  const u = await db
    .selectFrom('users')
    .select(['name', 'display_name', 'email'])
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
  return { name: u.display_name || u.name, email: u.email };
}
