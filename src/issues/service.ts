import { sql } from 'kysely';
import { writeAudit } from '../core/audit.js';
import { badRequest, conflict, forbidden, notFound } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Actor } from '../core/http.js';
import { afterTimeCursor, cursorTime, decodeCursor, type Page, toPage } from '../core/pagination.js';
import { escapeLike } from '../core/validation.js';
import { allocateNumber } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, DbOrTx } from '../store/db.js';
import { type IssueStatus, issueStatusTransitions, type MergeRequestStatus } from '../store/schema.js';
import type { IssueEventBase, IssueUpdatedEvent } from './events.js';

/** A signed-in actor: every issue and comment change has a user behind it. */
export type UserActor = Actor & { id: string };

export interface IssueView {
  id: string;
  project_id: string;
  number: number;
  title: string;
  body: string;
  status: IssueStatus;
  labels: string[];
  author_id: string;
  /** Author's user name. */
  author: string;
  assignee_id: string | null;
  /** Assignee's user name. */
  assignee: string | null;
  closed_at: Date | null;
  closed_by: string | null;
  comment_count: number;
  created_at: Date;
  updated_at: Date;
}

export interface CommentView {
  id: string;
  project_id: string;
  /** Exactly one of issue_id / merge_request_id is set. */
  issue_id: string | null;
  merge_request_id: string | null;
  author_id: string;
  author: string;
  body: string;
  created_at: Date;
  updated_at: Date;
}

export interface CreateIssueInput {
  title: string;
  body?: string;
  /** Already normalised (trimmed, deduplicated) by the route schema. */
  labels?: string[];
  assignee_id?: string | null;
}

export interface UpdateIssueInput {
  title?: string;
  body?: string;
  status?: IssueStatus;
  labels?: string[];
  assignee_id?: string | null;
}

export interface IssueFilter {
  limit: number;
  cursor?: string;
  status: IssueStatus | 'all';
  /** Issues carrying this label. */
  label?: string;
  /** Assignee's user name, or `none` for unassigned issues. */
  assignee?: string;
  /** Author's user name. */
  author?: string;
  /** Text in title or body (case-insensitive). */
  q?: string;
}

export type CommentTarget = 'issue' | 'merge_request';

/** What a comment hangs on: an issue or a merge request, by its number in the project. */
export interface CommentParentRef {
  target: CommentTarget;
  projectId: string;
  number: number;
}

export interface CommentPageQuery {
  limit: number;
  cursor?: string;
}

type IssueChange = IssueUpdatedEvent['changes'][number];

interface CommentParent {
  target: CommentTarget;
  id: string;
  projectId: string;
  project: string;
  number: number;
  title: string;
  status: string;
  /** The issue row (events of issue comments carry the issue's fields). */
  issue?: IssueRow;
}

/** Audit details name the issue by number and a short title; bodies never reach the audit log. */
const auditTitle = (title: string) => (title.length > 80 ? `${title.slice(0, 80)}…` : title);

function invalidCursor() {
  return badRequest('invalid cursor', [
    { path: 'query.cursor', message: 'not a cursor returned by this API' },
  ]);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function selectIssues(db: DbOrTx) {
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

type IssueRow = Awaited<ReturnType<ReturnType<typeof selectIssues>['executeTakeFirstOrThrow']>>;

function selectComments(db: DbOrTx) {
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
      cursorTime('c.created_at').as('cursor_at'),
    ]);
}

type CommentRow = Awaited<ReturnType<ReturnType<typeof selectComments>['executeTakeFirstOrThrow']>>;

function issueView(r: IssueRow): IssueView {
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

function commentView(r: CommentRow): CommentView {
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

/**
 * Issues (numbered per project) and the comments of issues and merge requests. Callers authorize
 * access to the project; this service enforces the domain rules (assignee may read the project,
 * status transitions, only the author or an admin changes a comment), audits every change in its
 * transaction and emits the events after the commit.
 */
export class IssuesService {
  constructor(
    private readonly db: Db,
    private readonly rbac: RbacService,
    private readonly events: EventBus,
    private readonly options: { publicUrl: string },
  ) {}

  /** The issue with this number in the project, or undefined. */
  async findByNumber(projectId: string, number: number): Promise<IssueView | undefined> {
    const row = await this.findRow(this.db, projectId, number);
    return row && issueView(row);
  }

  async get(projectId: string, number: number): Promise<IssueView> {
    const row = await this.findRow(this.db, projectId, number);
    if (!row) throw notFound('issue');
    return issueView(row);
  }

  async create(actor: UserActor, projectId: string, input: CreateIssueInput): Promise<IssueView> {
    if (input.assignee_id) await this.assertAssignable(projectId, input.assignee_id);
    const row = await this.db.transaction().execute(async (trx) => {
      const number = await allocateNumber(trx, projectId, 'issue');
      const { id } = await trx
        .insertInto('issues')
        .values({
          project_id: projectId,
          number,
          title: input.title,
          body: input.body ?? '',
          labels: input.labels ?? [],
          author_id: actor.id,
          assignee_id: input.assignee_id ?? null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'issue.create',
        resourceType: 'issue',
        resourceId: id,
        projectId,
        detail: { number, title: auditTitle(input.title) },
      });
      return selectIssues(trx).where('i.id', '=', id).executeTakeFirstOrThrow();
    });
    this.events.emit('issue.opened', { ...this.eventBase(row, actor.id), body: row.body });
    this.emitAssigned(row, actor.id);
    return issueView(row);
  }

  async list(projectId: string, f: IssueFilter): Promise<Page<IssueView>> {
    let q = selectIssues(this.db)
      .where('i.project_id', '=', projectId)
      .orderBy('i.number', 'desc')
      .limit(f.limit + 1);
    if (f.status !== 'all') q = q.where('i.status', '=', f.status);
    if (f.label !== undefined) q = q.where(sql<boolean>`i.labels @> array[${f.label}]::text[]`);
    if (f.assignee === 'none') q = q.where('i.assignee_id', 'is', null);
    else if (f.assignee !== undefined) q = q.where('s.name', '=', f.assignee);
    if (f.author !== undefined) q = q.where('a.name', '=', f.author);
    if (f.q) {
      const like = `%${escapeLike(f.q)}%`;
      q = q.where((eb) => eb.or([eb('i.title', 'ilike', like), eb('i.body', 'ilike', like)]));
    }
    if (f.cursor) {
      // Numbers are unique per project and grow with creation: the last number is an exact cursor.
      const [last] = decodeCursor(f.cursor, 1) as [string];
      if (!/^[1-9]\d{0,9}$/.test(last)) throw invalidCursor();
      q = q.where('i.number', '<', Number(last));
    }
    const rows = await q.execute();
    return toPage(rows, f.limit, (r) => [String(r.number)], issueView);
  }

  async update(
    actor: UserActor,
    projectId: string,
    number: number,
    input: UpdateIssueInput,
  ): Promise<IssueView> {
    const before = await this.findRow(this.db, projectId, number);
    if (!before) throw notFound('issue');
    // Checked before the transaction: RBAC reads through the pool (PGlite has one connection).
    if (input.assignee_id && input.assignee_id !== before.assignee_id) {
      await this.assertAssignable(projectId, input.assignee_id);
    }
    const { row, changes, transition } = await this.db.transaction().execute(async (trx) => {
      const current = await trx
        .selectFrom('issues')
        .selectAll()
        .where('project_id', '=', projectId)
        .where('number', '=', number)
        .forUpdate()
        .executeTakeFirst();
      if (!current) throw notFound('issue');
      const changes: IssueChange[] = [];
      const set: { title?: string; body?: string; labels?: string[]; assignee_id?: string | null } = {};
      if (input.title !== undefined && input.title !== current.title) {
        set.title = input.title;
        changes.push('title');
      }
      if (input.body !== undefined && input.body !== current.body) {
        set.body = input.body;
        changes.push('body');
      }
      if (input.labels !== undefined && !sameList(input.labels, current.labels)) {
        set.labels = input.labels;
        changes.push('labels');
      }
      if (input.assignee_id !== undefined && input.assignee_id !== current.assignee_id) {
        set.assignee_id = input.assignee_id;
        changes.push('assignee_id');
      }
      let transition: 'closed' | 'reopened' | null = null;
      if (input.status !== undefined && input.status !== current.status) {
        if (!issueStatusTransitions[current.status].includes(input.status)) {
          throw conflict(`the issue is ${current.status} and cannot become ${input.status}`, [
            { message: `status is ${current.status}`, status: current.status },
          ]);
        }
        transition = input.status === 'closed' ? 'closed' : 'reopened';
      }
      if (changes.length > 0 || transition) {
        let update = trx.updateTable('issues').set(set).where('id', '=', current.id);
        if (transition === 'closed') {
          update = update.set({ status: 'closed', closed_at: sql<Date>`now()`, closed_by: actor.id });
        } else if (transition === 'reopened') {
          update = update.set({ status: 'open', closed_at: null, closed_by: null });
        }
        await update.execute();
      }
      await writeAudit(trx, {
        actor,
        action: 'issue.update',
        resourceType: 'issue',
        resourceId: current.id,
        projectId,
        detail: {
          number,
          title: auditTitle(set.title ?? current.title),
          fields: transition ? [...changes, 'status'] : changes,
          ...(transition ? { status: input.status } : {}),
        },
      });
      const row = await selectIssues(trx).where('i.id', '=', current.id).executeTakeFirstOrThrow();
      return { row, changes, transition };
    });
    const base = this.eventBase(row, actor.id);
    if (changes.length > 0) this.events.emit('issue.updated', { ...base, changes });
    if (transition === 'closed') this.events.emit('issue.closed', base);
    if (transition === 'reopened') this.events.emit('issue.reopened', base);
    if (changes.includes('assignee_id')) this.emitAssigned(row, actor.id);
    return issueView(row);
  }

  // ---------------------------------------------------------------- comments

  async listComments(ref: CommentParentRef, page: CommentPageQuery): Promise<Page<CommentView>> {
    const parent = await this.findParent(this.db, ref);
    let q = selectComments(this.db)
      .where(parent.target === 'issue' ? 'c.issue_id' : 'c.mr_id', '=', parent.id)
      .orderBy('c.created_at', 'asc')
      .orderBy('c.id', 'asc')
      .limit(page.limit + 1);
    if (page.cursor) {
      q = q.where(afterTimeCursor(page.cursor, { time: 'c.created_at', id: 'c.id' }, 'asc'));
    }
    const rows = await q.execute();
    return toPage(rows, page.limit, (r) => [r.cursor_at, r.id], commentView);
  }

  async addComment(actor: UserActor, ref: CommentParentRef, body: string): Promise<CommentView> {
    const { parent, row } = await this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      const { id } = await trx
        .insertInto('comments')
        .values({
          project_id: ref.projectId,
          issue_id: parent.target === 'issue' ? parent.id : null,
          mr_id: parent.target === 'merge_request' ? parent.id : null,
          author_id: actor.id,
          body,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await this.auditComment(trx, actor, 'comment.create', id, parent);
      return { parent, row: await selectComments(trx).where('c.id', '=', id).executeTakeFirstOrThrow() };
    });
    if (parent.issue) {
      this.events.emit('issue.commented', {
        ...this.eventBase(parent.issue, actor.id),
        commentId: row.id,
        body: row.body,
      });
    } else {
      this.events.emit('mr.commented', {
        projectId: parent.projectId,
        project: parent.project,
        mergeRequestId: parent.id,
        number: parent.number,
        title: parent.title,
        status: parent.status as MergeRequestStatus,
        commentId: row.id,
        body: row.body,
        actorId: actor.id,
        url: this.url(parent.projectId, 'merge_request', parent.number),
      });
    }
    return commentView(row);
  }

  /** The comment's author, or an admin (`isAdmin`: the caller holds admin:users), may edit it. */
  async editComment(
    actor: UserActor,
    ref: CommentParentRef,
    commentId: string,
    body: string,
    isAdmin: boolean,
  ): Promise<CommentView> {
    return this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      await this.lockOwnComment(trx, parent, commentId, actor, isAdmin, 'edit');
      await trx.updateTable('comments').set({ body }).where('id', '=', commentId).execute();
      await this.auditComment(trx, actor, 'comment.update', commentId, parent);
      return commentView(await selectComments(trx).where('c.id', '=', commentId).executeTakeFirstOrThrow());
    });
  }

  async deleteComment(
    actor: UserActor,
    ref: CommentParentRef,
    commentId: string,
    isAdmin: boolean,
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      await this.lockOwnComment(trx, parent, commentId, actor, isAdmin, 'delete');
      await trx.deleteFrom('comments').where('id', '=', commentId).execute();
      await this.auditComment(trx, actor, 'comment.delete', commentId, parent);
    });
  }

  // ---------------------------------------------------------------- helpers

  private findRow(db: DbOrTx, projectId: string, number: number) {
    return selectIssues(db)
      .where('i.project_id', '=', projectId)
      .where('i.number', '=', number)
      .executeTakeFirst();
  }

  /**
   * The assignee must be an active user who may read the project. RBAC decides on a principal, so
   * one is built for that user the way authentication does (no token: the user's own permissions).
   */
  private assertAssignable(projectId: string, userId: string): Promise<void> {
    return this.rbac.assertParticipant(userId, projectId, 'assignee', 'body.assignee_id');
  }

  private async findParent(db: DbOrTx, ref: CommentParentRef): Promise<CommentParent> {
    if (ref.target === 'issue') {
      const issue = await this.findRow(db, ref.projectId, ref.number);
      if (!issue) throw notFound('issue');
      return {
        target: 'issue',
        id: issue.id,
        projectId: issue.project_id,
        project: `${issue.project_owner}/${issue.project_name}`,
        number: issue.number,
        title: issue.title,
        status: issue.status,
        issue,
      };
    }
    const mr = await db
      .selectFrom('merge_requests as m')
      .innerJoin('projects as p', 'p.id', 'm.project_id')
      .innerJoin('users as o', 'o.id', 'p.owner_id')
      .select(['m.id', 'm.project_id', 'm.number', 'm.title', 'm.status', 'p.name', 'o.name as owner'])
      .where('m.project_id', '=', ref.projectId)
      .where('m.number', '=', ref.number)
      .executeTakeFirst();
    if (!mr) throw notFound('merge request');
    return {
      target: 'merge_request',
      id: mr.id,
      projectId: mr.project_id,
      project: `${mr.owner}/${mr.name}`,
      number: mr.number,
      title: mr.title,
      status: mr.status,
    };
  }

  private async lockOwnComment(
    trx: DbOrTx,
    parent: CommentParent,
    commentId: string,
    actor: UserActor,
    isAdmin: boolean,
    verb: 'edit' | 'delete',
  ): Promise<void> {
    const comment = await trx
      .selectFrom('comments')
      .select(['id', 'author_id'])
      .where('id', '=', commentId)
      .where(parent.target === 'issue' ? 'issue_id' : 'mr_id', '=', parent.id)
      .forUpdate()
      .executeTakeFirst();
    if (!comment) throw notFound('comment');
    if (comment.author_id !== actor.id && !isAdmin) {
      throw forbidden(`only the comment's author or an admin may ${verb} it`);
    }
  }

  private auditComment(
    trx: DbOrTx,
    actor: UserActor,
    action: string,
    commentId: string,
    parent: CommentParent,
  ): Promise<void> {
    return writeAudit(trx, {
      actor,
      action,
      resourceType: 'comment',
      resourceId: commentId,
      projectId: parent.projectId,
      detail: { on: parent.target, number: parent.number, title: auditTitle(parent.title) },
    });
  }

  private url(projectId: string, target: CommentTarget, number: number): string {
    const segment = target === 'issue' ? 'issues' : 'merge-requests';
    return `${this.options.publicUrl}/api/projects/${projectId}/${segment}/${number}`;
  }

  private eventBase(row: IssueRow, actorId: string): IssueEventBase {
    return {
      projectId: row.project_id,
      project: `${row.project_owner}/${row.project_name}`,
      issueId: row.id,
      number: row.number,
      title: row.title,
      status: row.status,
      labels: row.labels,
      authorId: row.author_id,
      assigneeId: row.assignee_id,
      actorId,
      url: this.url(row.project_id, 'issue', row.number),
    };
  }

  /** Assigning someone else notifies them; assigning yourself does not. */
  private emitAssigned(row: IssueRow, actorId: string): void {
    if (!row.assignee_id || row.assignee_id === actorId) return;
    this.events.emit('issue.assigned', {
      projectId: row.project_id,
      issueId: row.id,
      number: row.number,
      title: row.title,
      assigneeId: row.assignee_id,
      assignedBy: actorId,
    });
  }
}
