import { writeAudit } from '../core/audit.js';
import { forbidden, notFound } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db, DbOrTx } from '../store/db.js';
import type { MergeRequestStatus } from '../store/schema.js';
import type { IssuePayloads } from './payloads.js';
import {
  type CommentTarget,
  commentsOf,
  deleteComment,
  findIssue,
  findMergeRequestRef,
  getCommentById,
  type IssueRow,
  insertComment,
  lockComment,
  updateCommentBody,
} from './queries.js';
import { ISSUE_REASONS } from './reasons.js';
import { type CommentView, commentView } from './schemas.js';
import { auditTitle } from './transitions.js';
import type { UserActor } from './types.js';

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

/**
 * Comments of issues and merge requests: anyone with project:write comments (the routes check it);
 * only the author or an admin edits or deletes one. Each change is audited in its transaction and
 * the events follow the commit.
 */
export class IssueComments {
  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly payloads: IssuePayloads,
  ) {}

  async list(ref: CommentParentRef, page: CommentPageQuery): Promise<Page<CommentView>> {
    const parent = await this.findParent(this.db, ref);
    return pageByTime(
      commentsOf(this.db, parent.target, parent.id),
      { time: 'c.created_at', id: 'c.id' },
      page,
      commentView,
      'asc',
    );
  }

  async add(actor: UserActor, ref: CommentParentRef, body: string): Promise<CommentView> {
    const { parent, row } = await this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      const id = await insertComment(trx, {
        project_id: ref.projectId,
        target: parent.target,
        parent_id: parent.id,
        author_id: actor.id,
        body,
      });
      await this.audit(trx, actor, 'comment.create', id, parent);
      return { parent, row: await getCommentById(trx, id) };
    });
    if (parent.issue) {
      this.events.emit('issue.commented', {
        ...this.payloads.base(parent.issue, actor.id),
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
        url: this.payloads.url(parent.projectId, 'merge_request', parent.number),
      });
    }
    return commentView(row);
  }

  /** The comment's author, or an admin (`isAdmin`: the caller holds admin:users), may edit it. */
  async edit(
    actor: UserActor,
    ref: CommentParentRef,
    commentId: string,
    body: string,
    isAdmin: boolean,
  ): Promise<CommentView> {
    return this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      await this.lockOwnComment(trx, parent, commentId, actor, isAdmin, 'edit');
      await updateCommentBody(trx, commentId, body);
      await this.audit(trx, actor, 'comment.update', commentId, parent);
      return commentView(await getCommentById(trx, commentId));
    });
  }

  async remove(actor: UserActor, ref: CommentParentRef, commentId: string, isAdmin: boolean): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const parent = await this.findParent(trx, ref);
      await this.lockOwnComment(trx, parent, commentId, actor, isAdmin, 'delete');
      await deleteComment(trx, commentId);
      await this.audit(trx, actor, 'comment.delete', commentId, parent);
    });
  }

  private async findParent(db: DbOrTx, ref: CommentParentRef): Promise<CommentParent> {
    if (ref.target === 'issue') {
      const issue = await findIssue(db, ref.projectId, ref.number);
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
    const mr = await findMergeRequestRef(db, ref.projectId, ref.number);
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
    const comment = await lockComment(trx, parent.target, parent.id, commentId);
    if (!comment) throw notFound('comment');
    if (comment.author_id !== actor.id && !isAdmin) {
      throw forbidden(`only the comment's author or an admin may ${verb} it`).because(
        ISSUE_REASONS.notCommentAuthor,
      );
    }
  }

  private audit(
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
}
