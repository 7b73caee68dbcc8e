import { writeAudit } from '../core/audit.js';
import { AppError, badRequest, notFound } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import { allocateNumber } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import { type CommentPageQuery, type CommentParentRef, IssueComments } from './comments.js';
import type { IssueUpdatedEvent } from './events.js';
import { IssuePayloads } from './payloads.js';
import {
  findIssue,
  getIssueById,
  type IssueFieldChanges,
  insertIssue,
  listIssues,
  lockIssue,
  updateIssueFields,
} from './queries.js';
import { ISSUE_REASONS } from './reasons.js';
import {
  type CommentView,
  type CreateIssueInput,
  type IssueFilter,
  type IssueView,
  issueView,
  type UpdateIssueInput,
} from './schemas.js';
import { auditTitle, transitionIssueStatus } from './transitions.js';
import type { UserActor } from './types.js';

export type { CommentPageQuery, CommentParentRef } from './comments.js';
export type { CommentTarget } from './queries.js';
export type { CommentView, CreateIssueInput, IssueFilter, IssueView, UpdateIssueInput } from './schemas.js';
export type { UserActor } from './types.js';

type IssueChange = IssueUpdatedEvent['changes'][number];

function invalidCursor() {
  return badRequest('invalid cursor', [
    { path: 'query.cursor', message: 'not a cursor returned by this API' },
  ]);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Issues (numbered per project) and, through `IssueComments`, the comments of issues and merge
 * requests. Callers authorize access to the project; this service enforces the domain rules
 * (assignee may read the project, status transitions through transitions.ts, only the author or an
 * admin changes a comment), audits every change in its transaction and emits the events after the
 * commit.
 */
export class IssuesService {
  private readonly payloads: IssuePayloads;
  private readonly comments: IssueComments;

  constructor(
    private readonly db: Db,
    private readonly rbac: RbacService,
    private readonly events: EventBus,
    options: { publicUrl: string },
  ) {
    this.payloads = new IssuePayloads(events, options.publicUrl);
    this.comments = new IssueComments(db, events, this.payloads);
  }

  /** The issue with this number in the project, or undefined. */
  async findByNumber(projectId: string, number: number): Promise<IssueView | undefined> {
    const row = await findIssue(this.db, projectId, number);
    return row && issueView(row);
  }

  async get(projectId: string, number: number): Promise<IssueView> {
    const row = await findIssue(this.db, projectId, number);
    if (!row) throw notFound('issue');
    return issueView(row);
  }

  async create(actor: UserActor, projectId: string, input: CreateIssueInput): Promise<IssueView> {
    if (input.assignee_id) await this.assertAssignable(projectId, input.assignee_id);
    const row = await this.db.transaction().execute(async (trx) => {
      const number = await allocateNumber(trx, projectId, 'issue');
      const id = await insertIssue(trx, {
        project_id: projectId,
        number,
        title: input.title,
        body: input.body ?? '',
        labels: input.labels ?? [],
        author_id: actor.id,
        assignee_id: input.assignee_id ?? null,
      });
      await writeAudit(trx, {
        actor,
        action: 'issue.create',
        resourceType: 'issue',
        resourceId: id,
        projectId,
        detail: { number, title: auditTitle(input.title) },
      });
      return getIssueById(trx, id);
    });
    this.events.emit('issue.opened', { ...this.payloads.base(row, actor.id), body: row.body });
    this.payloads.emitAssigned(row, actor.id);
    return issueView(row);
  }

  /** Newest first. Numbers are unique per project and grow with creation: the last one is the cursor. */
  async list(projectId: string, f: IssueFilter): Promise<Page<IssueView>> {
    let before: number | undefined;
    if (f.cursor) {
      const [last] = decodeCursor(f.cursor, 1) as [string];
      if (!/^[1-9]\d{0,9}$/.test(last)) throw invalidCursor();
      before = Number(last);
    }
    const rows = await listIssues(this.db, projectId, { ...f, before }, f.limit + 1);
    return toPage(rows, f.limit, (r) => [String(r.number)], issueView);
  }

  async update(
    actor: UserActor,
    projectId: string,
    number: number,
    input: UpdateIssueInput,
  ): Promise<IssueView> {
    const before = await findIssue(this.db, projectId, number);
    if (!before) throw notFound('issue');
    // Checked before the transaction: RBAC reads through the pool, not the transaction.
    if (input.assignee_id && input.assignee_id !== before.assignee_id) {
      await this.assertAssignable(projectId, input.assignee_id);
    }
    const { row, changes, transition } = await this.db.transaction().execute(async (trx) => {
      const current = await lockIssue(trx, projectId, number);
      if (!current) throw notFound('issue');
      const changes: IssueChange[] = [];
      const set: IssueFieldChanges = {};
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
      if (changes.length > 0) await updateIssueFields(trx, current.id, set);
      // Asking for the status the issue already has changes nothing (closing twice is not an error).
      const transition =
        input.status !== undefined && input.status !== current.status
          ? input.status === 'closed'
            ? 'closed'
            : 'reopened'
          : null;
      const issue = { ...current, title: set.title ?? current.title };
      if (transition) {
        // The transition writes the request's one audit row, naming the other changed fields too.
        await transitionIssueStatus(trx, { issue, to: input.status!, actor, alsoChanged: changes });
      } else {
        await writeAudit(trx, {
          actor,
          action: 'issue.update',
          resourceType: 'issue',
          resourceId: current.id,
          projectId,
          detail: { number, title: auditTitle(issue.title), fields: changes },
        });
      }
      return { row: await getIssueById(trx, current.id), changes, transition };
    });
    const base = this.payloads.base(row, actor.id);
    if (changes.length > 0) this.events.emit('issue.updated', { ...base, changes });
    if (transition === 'closed') this.events.emit('issue.closed', base);
    if (transition === 'reopened') this.events.emit('issue.reopened', base);
    if (changes.includes('assignee_id')) this.payloads.emitAssigned(row, actor.id);
    return issueView(row);
  }

  // ---------------------------------------------------------------- comments (comments.ts)

  listComments(ref: CommentParentRef, page: CommentPageQuery): Promise<Page<CommentView>> {
    return this.comments.list(ref, page);
  }

  addComment(actor: UserActor, ref: CommentParentRef, body: string): Promise<CommentView> {
    return this.comments.add(actor, ref, body);
  }

  /** The comment's author, or an admin (`isAdmin`: the caller holds admin:users), may edit it. */
  editComment(
    actor: UserActor,
    ref: CommentParentRef,
    commentId: string,
    body: string,
    isAdmin: boolean,
  ): Promise<CommentView> {
    return this.comments.edit(actor, ref, commentId, body, isAdmin);
  }

  deleteComment(actor: UserActor, ref: CommentParentRef, commentId: string, isAdmin: boolean): Promise<void> {
    return this.comments.remove(actor, ref, commentId, isAdmin);
  }

  /**
   * The assignee must be an active user who may read the project (rbac decides, for that user's
   * own permissions); a refusal is a 422 naming them, with the reason.
   */
  private async assertAssignable(projectId: string, userId: string): Promise<void> {
    try {
      await this.rbac.assertParticipant(userId, projectId, 'assignee', 'body.assignee_id');
    } catch (err) {
      if (err instanceof AppError && err.status === 422) throw err.because(ISSUE_REASONS.notAssignable);
      throw err;
    }
  }
}
