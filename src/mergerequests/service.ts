import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { AppError, badRequest, conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Actor, Principal } from '../core/http.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import { escapeLike } from '../core/validation.js';
import type { PushReceivedEvent } from '../git/index.js';
import {
  allocateNumber,
  branchProtection,
  loadProtectionRules,
  type ProjectRow,
  type ProjectsService,
} from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, DbOrTx } from '../store/db.js';
import { type MergeRequestStatus, mergeRequestStatusTransitions } from '../store/schema.js';
import './events.js';
import {
  branchSha,
  commitsBetween,
  compareAndSwapBranch,
  diffStats,
  type Identity,
  isAncestor,
  MergeConflictError,
  type MergeStrategy,
  mergeBase,
  mergeTree,
  NotFastForwardError,
  NothingToMergeError,
  newCommits,
  prepareMerge,
} from './git.js';

export type { MergeStrategy } from './git.js';

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

export interface ListFilter {
  limit: number;
  cursor?: string;
  status?: MergeRequestStatus | 'all';
  author?: string;
  target?: string;
  source?: string;
  q?: string;
}

/** How often a merge is recomputed when the target moved under it before giving up with a 409. */
const CAS_ATTEMPTS = 5;

/**
 * Merge requests: create, list, detail (commits, diff stats, mergeability, approvals, checks),
 * reviews, close/reopen and merges. Merges into one target branch are serialized per instance and
 * published with compare-and-swap, so instances never overwrite each other's merges.
 */
export class MergeRequestsService {
  /** Tail of the chain of merges per project+target branch on this instance. */
  private readonly mergeChains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly db: Db,
    private readonly projects: ProjectsService,
    private readonly rbac: RbacService,
    private readonly events: EventBus,
    private readonly log: Logger,
  ) {}

  private selectMrs(db: DbOrTx) {
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

  private view(
    r: Awaited<ReturnType<ReturnType<MergeRequestsService['selectMrs']>['executeTakeFirstOrThrow']>>,
  ): MergeRequestView {
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

  private async row(projectId: string, number: number, db: DbOrTx = this.db) {
    const row = await this.selectMrs(db)
      .where('m.project_id', '=', projectId)
      .where('m.number', '=', number)
      .executeTakeFirst();
    if (!row) throw notFound('merge request');
    return row;
  }

  async get(projectId: string, number: number): Promise<MergeRequestView> {
    return this.view(await this.row(projectId, number));
  }

  private repo(project: ProjectRow): string {
    return this.projects.repoDir(project);
  }

  async create(
    actor: Actor,
    principal: Principal,
    projectId: string,
    input: {
      source_branch: string;
      target_branch: string;
      title: string;
      body?: string;
      reviewer_ids?: string[];
    },
  ): Promise<MergeRequestView> {
    const project = await this.projects.get(projectId);
    if (!project.is_active) throw conflict('the project is archived');
    if (input.source_branch === input.target_branch) {
      throw unprocessable('source and target branch must differ', [
        { path: 'body.target_branch', message: 'same as source_branch' },
      ]);
    }
    const dir = this.repo(project);
    const [head, base] = await Promise.all([
      branchSha(dir, input.source_branch),
      branchSha(dir, input.target_branch),
    ]);
    const missing = [
      ...(head
        ? []
        : [{ path: 'body.source_branch', message: `branch ${input.source_branch} does not exist` }]),
      ...(base
        ? []
        : [{ path: 'body.target_branch', message: `branch ${input.target_branch} does not exist` }]),
    ];
    if (missing.length > 0) throw unprocessable('branch not found', missing);
    const reviewerIds = [...new Set(input.reviewer_ids ?? [])].filter((id) => id !== principal.userId);
    for (const id of reviewerIds) {
      await this.rbac.assertParticipant(id, projectId, 'reviewer', 'body.reviewer_ids');
    }
    const created = await this.db.transaction().execute(async (trx) => {
      const duplicate = await trx
        .selectFrom('merge_requests')
        .select('number')
        .where('project_id', '=', projectId)
        .where('source_branch', '=', input.source_branch)
        .where('target_branch', '=', input.target_branch)
        .where('status', '=', 'open')
        .executeTakeFirst();
      if (duplicate) {
        throw conflict(`merge request !${duplicate.number} is already open for this source and target`, [
          { path: 'body.source_branch', message: `open as !${duplicate.number}` },
        ]);
      }
      const number = await allocateNumber(trx, projectId, 'merge_request');
      const mr = await trx
        .insertInto('merge_requests')
        .values({
          project_id: projectId,
          number,
          title: input.title,
          body: input.body ?? '',
          source_branch: input.source_branch,
          target_branch: input.target_branch,
          author_id: principal.userId,
          head_sha: head,
          base_sha: base,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      if (reviewerIds.length > 0) {
        await trx
          .insertInto('mr_reviewers')
          .values(reviewerIds.map((user_id) => ({ mr_id: mr.id, user_id, requested_by: principal.userId })))
          .execute();
      }
      await writeAudit(trx, {
        actor,
        action: 'mr.create',
        resourceType: 'merge_request',
        resourceId: mr.id,
        projectId,
        detail: { number, source: input.source_branch, target: input.target_branch, reviewers: reviewerIds },
      });
      return this.row(projectId, number, trx);
    });
    this.events.emit('mr.opened', {
      projectId,
      mergeRequestId: created.id,
      number: created.number,
      title: created.title,
      authorId: principal.userId,
      sourceBranch: created.source_branch,
      targetBranch: created.target_branch,
      headSha: created.head_sha!,
      recipientIds: [...reviewerIds, project.owner_id],
    });
    return this.view(created);
  }

  async list(projectId: string, f: ListFilter): Promise<Page<MergeRequestView>> {
    let q = this.selectMrs(this.db)
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
    return toPage(
      rows,
      f.limit,
      (r) => [String(r.number)],
      (r) => this.view(r),
    );
  }

  /** Protection of the target branch: the strictest of the matching rules. */
  private async protection(projectId: string, branch: string, db: DbOrTx = this.db) {
    return branchProtection(await loadProtectionRules(db, projectId), branch);
  }

  /**
   * Approvals that count: the latest review of each reviewer other than the author, given on the
   * current head (a push makes earlier approvals stale).
   */
  private async approvals(mrId: string, authorId: string, headSha: string | null, db: DbOrTx = this.db) {
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

  private async latestPipeline(projectId: string, sha: string | null, db: DbOrTx = this.db) {
    if (!sha) return null;
    const p = await db
      .selectFrom('pipelines')
      .select(['id', 'status', 'created_at'])
      .where('project_id', '=', projectId)
      .where('commit_sha', '=', sha)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return p ? { pipeline_id: p.id, status: p.status } : null;
  }

  /** Everything a reviewer needs: reviews, comments, commits, diff stats, mergeability, approvals, checks. */
  async detail(projectId: string, number: number) {
    const project = await this.projects.get(projectId);
    const mr = await this.row(projectId, number);
    const dir = this.repo(project);
    const [sourceTip, targetTip] = await Promise.all([
      branchSha(dir, mr.source_branch),
      branchSha(dir, mr.target_branch),
    ]);
    const head = mr.status === 'open' ? (sourceTip ?? mr.head_sha) : mr.head_sha;
    const target = mr.status === 'open' ? targetTip : (mr.base_sha ?? targetTip);
    let commits: Awaited<ReturnType<typeof commitsBetween>> = [];
    let diff: Awaited<ReturnType<typeof diffStats>> | null = null;
    let mergeability: {
      mergeable: boolean;
      conflicts: string[];
      fast_forward_possible: boolean;
      reason: string | null;
    } | null = null;
    if (head && target && mr.status !== 'merged') {
      const base = (await mergeBase(dir, target, head)) ?? target;
      [commits, diff] = await Promise.all([commitsBetween(dir, target, head), diffStats(dir, base, head)]);
    } else if (mr.status === 'merged' && mr.head_sha && mr.base_sha) {
      const base = (await mergeBase(dir, mr.base_sha, mr.head_sha)) ?? mr.base_sha;
      [commits, diff] = await Promise.all([
        commitsBetween(dir, base, mr.head_sha),
        diffStats(dir, base, mr.head_sha),
      ]);
    }
    if (mr.status === 'open') {
      if (!sourceTip)
        mergeability = {
          mergeable: false,
          conflicts: [],
          fast_forward_possible: false,
          reason: 'source branch deleted',
        };
      else if (!targetTip)
        mergeability = {
          mergeable: false,
          conflicts: [],
          fast_forward_possible: false,
          reason: 'target branch deleted',
        };
      else if (await isAncestor(dir, sourceTip, targetTip)) {
        mergeability = {
          mergeable: false,
          conflicts: [],
          fast_forward_possible: false,
          reason: 'nothing to merge',
        };
      } else {
        const { conflicts } = await mergeTree(dir, targetTip, sourceTip);
        mergeability = {
          mergeable: conflicts.length === 0,
          conflicts,
          fast_forward_possible: await isAncestor(dir, targetTip, sourceTip),
          reason: conflicts.length > 0 ? 'conflicts' : null,
        };
      }
    }
    const [protection, approvals, checks, reviews, comments, reviewers] = await Promise.all([
      this.protection(projectId, mr.target_branch),
      this.approvals(mr.id, mr.author_id, head),
      this.latestPipeline(projectId, head),
      this.db
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
        .where('r.mr_id', '=', mr.id)
        .orderBy('r.created_at', 'asc')
        .limit(500)
        .execute(),
      this.db
        .selectFrom('comments as c')
        .innerJoin('users as u', 'u.id', 'c.author_id')
        .select(['c.id', 'c.author_id', 'u.name as author_name', 'c.body', 'c.created_at', 'c.updated_at'])
        .where('c.mr_id', '=', mr.id)
        .orderBy('c.created_at', 'asc')
        .limit(500)
        .execute(),
      this.db
        .selectFrom('mr_reviewers as r')
        .innerJoin('users as u', 'u.id', 'r.user_id')
        .select(['u.id', 'u.name'])
        .where('r.mr_id', '=', mr.id)
        .orderBy('u.name')
        .execute(),
    ]);
    return {
      ...this.view(mr),
      head_sha: head,
      target_sha: targetTip,
      reviewers,
      reviews: reviews.map((r) => ({
        id: r.id,
        reviewer: { id: r.reviewer_id, name: r.reviewer_name },
        verdict: r.verdict,
        body: r.body,
        commit_sha: r.commit_sha,
        stale: r.commit_sha !== head,
        created_at: r.created_at,
      })),
      comments: comments.map((c) => ({
        id: c.id,
        author: { id: c.author_id, name: c.author_name },
        body: c.body,
        created_at: c.created_at,
        updated_at: c.updated_at,
      })),
      commits,
      diff_stats: diff,
      mergeability,
      approvals: {
        required: protection.required_approvals,
        given: approvals.approved_by.length,
        approved_by: approvals.approved_by,
        changes_requested_by: approvals.changes_requested_by,
      },
      checks: {
        required: protection.require_pipeline,
        latest_pipeline: checks,
      },
    };
  }

  async update(
    actor: Actor,
    principal: Principal,
    projectId: string,
    number: number,
    input: { title?: string; body?: string; status?: 'open' | 'closed' },
  ): Promise<MergeRequestView> {
    const before = await this.row(projectId, number);
    // State changes queue behind merges into the same branch, so a merge in progress never ends
    // with the branch moved and the MR closed.
    return this.serialize(`${projectId}\0${before.target_branch}`, () =>
      this.updateSerialized(actor, principal, projectId, before, input),
    );
  }

  private async updateSerialized(
    actor: Actor,
    principal: Principal,
    projectId: string,
    before: Awaited<ReturnType<MergeRequestsService['row']>>,
    input: { title?: string; body?: string; status?: 'open' | 'closed' },
  ): Promise<MergeRequestView> {
    const { number } = before;
    // Reopening picks up where the source branch is now (it may have moved while closed).
    const reopenHead =
      input.status === 'open' && before.status === 'closed'
        ? await branchSha(this.repo(await this.projects.get(projectId)), before.source_branch)
        : null;
    let statusChange: 'closed' | 'reopened' | null = null;
    const updated = await this.db.transaction().execute(async (trx) => {
      const current = await trx
        .selectFrom('merge_requests')
        .select(['id', 'status'])
        .where('id', '=', before.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const set: {
        title?: string;
        body?: string;
        status?: MergeRequestStatus;
        closed_at?: Date | null;
        head_sha?: string;
      } = {};
      if (input.title !== undefined) set.title = input.title;
      if (input.body !== undefined) set.body = input.body;
      if (input.status !== undefined && input.status !== current.status) {
        if (!mergeRequestStatusTransitions[current.status].includes(input.status)) {
          throw conflict(`the merge request is ${current.status}`, [
            { path: 'status', message: current.status },
          ]);
        }
        set.status = input.status;
        set.closed_at = input.status === 'closed' ? new Date() : null;
        statusChange = input.status === 'closed' ? 'closed' : 'reopened';
      }
      if (statusChange === 'reopened') {
        if (!reopenHead) throw conflict(`source branch ${before.source_branch} no longer exists`);
        set.head_sha = reopenHead;
      }
      if (Object.keys(set).length > 0) {
        await trx.updateTable('merge_requests').set(set).where('id', '=', before.id).execute();
      }
      await writeAudit(trx, {
        actor,
        action: statusChange ? `mr.${statusChange === 'closed' ? 'close' : 'reopen'}` : 'mr.update',
        resourceType: 'merge_request',
        resourceId: before.id,
        projectId,
        detail: { number, fields: Object.keys(input) },
      });
      return this.row(projectId, number, trx);
    });
    const base = {
      projectId,
      mergeRequestId: updated.id,
      number,
      title: updated.title,
      actorId: principal.userId,
    };
    if (statusChange === 'closed') this.events.emit('mr.closed', base);
    else if (statusChange === 'reopened') {
      this.events.emit('mr.reopened', {
        ...base,
        sourceBranch: updated.source_branch,
        targetBranch: updated.target_branch,
        headSha: updated.head_sha ?? '',
      });
    }
    if (input.title !== undefined || input.body !== undefined) {
      this.events.emit('mr.updated', {
        ...base,
        reason: 'edit',
        sourceBranch: updated.source_branch,
        targetBranch: updated.target_branch,
        headSha: updated.head_sha ?? '',
        previousHeadSha: updated.head_sha,
      });
    }
    return this.view(updated);
  }

  async review(
    actor: Actor,
    principal: Principal,
    projectId: string,
    number: number,
    input: { verdict: 'approve' | 'request_changes' | 'comment'; body?: string },
  ) {
    const mr = await this.row(projectId, number);
    if (mr.status !== 'open')
      throw conflict(`the merge request is ${mr.status}`, [{ path: 'status', message: mr.status }]);
    if (input.verdict !== 'comment' && mr.author_id === principal.userId) {
      throw forbidden('you cannot approve or request changes on your own merge request');
    }
    const review = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('mr_reviews')
        .values({
          mr_id: mr.id,
          reviewer_id: principal.userId,
          verdict: input.verdict,
          body: input.body ?? '',
          commit_sha: mr.head_sha,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'mr.review',
        resourceType: 'merge_request',
        resourceId: mr.id,
        projectId,
        detail: { number, verdict: input.verdict, commit_sha: mr.head_sha },
      });
      return row;
    });
    this.events.emit('mr.reviewed', {
      projectId,
      mergeRequestId: mr.id,
      number,
      title: mr.title,
      actorId: principal.userId,
      authorId: mr.author_id,
      verdict: input.verdict,
    });
    return {
      id: review.id,
      reviewer: { id: principal.userId, name: principal.userName },
      verdict: review.verdict,
      body: review.body,
      commit_sha: review.commit_sha,
      created_at: review.created_at,
    };
  }

  /** Runs `work` after the previous merges into the same branch on this instance finished. */
  private serialize<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.mergeChains.get(key) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.mergeChains.set(key, tail);
    void tail.then(() => {
      if (this.mergeChains.get(key) === tail) this.mergeChains.delete(key);
    });
    return run;
  }

  async merge(
    actor: Actor,
    principal: Principal,
    projectId: string,
    number: number,
    input: { strategy?: MergeStrategy; message?: string; expected_head_sha?: string },
  ): Promise<MergeRequestView> {
    const project = await this.projects.get(projectId);
    if (!project.is_active) throw conflict('the project is archived');
    const first = await this.row(projectId, number);
    return this.serialize(`${projectId}\0${first.target_branch}`, () =>
      this.mergeSerialized(actor, principal, project, number, input),
    );
  }

  private async mergeSerialized(
    actor: Actor,
    principal: Principal,
    project: ProjectRow,
    number: number,
    input: { strategy?: MergeStrategy; message?: string; expected_head_sha?: string },
  ): Promise<MergeRequestView> {
    const strategy = input.strategy ?? 'merge';
    const mr = await this.row(project.id, number);
    if (mr.status !== 'open')
      throw conflict(`the merge request is ${mr.status}`, [{ path: 'status', message: mr.status }]);
    const dir = this.repo(project);
    const head = await branchSha(dir, mr.source_branch);
    if (!head) throw conflict(`source branch ${mr.source_branch} no longer exists`);
    if (input.expected_head_sha && input.expected_head_sha !== head) {
      throw conflict('the source branch moved since you reviewed it', [
        { path: 'body.expected_head_sha', message: `head is ${head}` },
      ]);
    }
    const protection = await this.protection(project.id, mr.target_branch);
    if (protection.protected) {
      const approvals = await this.approvals(mr.id, mr.author_id, head);
      if (approvals.approved_by.length < protection.required_approvals) {
        throw new AppError(
          409,
          'conflict',
          `branch ${mr.target_branch} requires ${protection.required_approvals} approval(s) of the current head; it has ${approvals.approved_by.length}`,
          [
            {
              path: 'approvals',
              message: `${approvals.approved_by.length}/${protection.required_approvals}`,
            },
          ],
        );
      }
      if (approvals.changes_requested_by.length > 0) {
        throw conflict(`changes requested by ${approvals.changes_requested_by.join(', ')}`, [
          { path: 'reviews', message: 'changes requested' },
        ]);
      }
      if (protection.require_pipeline) {
        const latest = await this.latestPipeline(project.id, head);
        if (latest?.status !== 'success') {
          throw conflict(
            `branch ${mr.target_branch} requires a successful pipeline for ${head.slice(0, 12)}; latest: ${latest?.status ?? 'none'}`,
            [{ path: 'checks', message: latest?.status ?? 'none' }],
          );
        }
      }
    }
    const merger = await this.identity(principal.userId);
    const author = await this.identity(mr.author_id);
    const message =
      input.message ??
      (strategy === 'squash'
        ? `${mr.title} (!${mr.number})\n\n${mr.body}`.trimEnd()
        : `Merge branch '${mr.source_branch}' into '${mr.target_branch}'\n\n${mr.title} (!${mr.number})`);
    let published: { targetSha: string; newSha: string } | null = null;
    for (let attempt = 1; attempt <= CAS_ATTEMPTS && !published; attempt++) {
      const targetSha = await branchSha(dir, mr.target_branch);
      if (!targetSha) throw conflict(`target branch ${mr.target_branch} no longer exists`);
      let prepared: Awaited<ReturnType<typeof prepareMerge>>;
      try {
        prepared = await prepareMerge(dir, {
          targetSha,
          sourceSha: head,
          strategy,
          message: `${message}\n`,
          author,
          committer: merger,
        });
      } catch (err) {
        if (err instanceof MergeConflictError) {
          throw conflict(
            `merge conflicts in ${err.files.join(', ')}`,
            err.files.map((f) => ({ path: f, message: 'conflict' })),
          );
        }
        if (err instanceof NotFastForwardError) throw conflict(`cannot fast-forward: ${err.message}`);
        if (err instanceof NothingToMergeError) throw conflict(`nothing to merge: ${err.message}`);
        throw err;
      }
      if (
        await compareAndSwapBranch(dir, mr.target_branch, prepared.newSha, targetSha, `merge !${mr.number}`)
      ) {
        published = { targetSha, newSha: prepared.newSha };
      } else {
        this.log.info(
          { project: project.id, mr: mr.number, attempt },
          'target branch moved during merge; retrying',
        );
      }
    }
    if (!published) throw conflict(`target branch ${mr.target_branch} kept moving; try again`);
    const merged = await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('merge_requests')
        .set({
          status: 'merged',
          merge_strategy: strategy,
          merge_sha: published.newSha,
          merged_by: principal.userId,
          merged_at: new Date(),
          head_sha: head,
          base_sha: published.targetSha,
        })
        .where('id', '=', mr.id)
        // The branch has moved: that is what happened, even if another instance closed the MR meanwhile.
        .where('status', '!=', 'merged')
        .execute();
      await writeAudit(trx, {
        actor,
        action: 'mr.merge',
        resourceType: 'merge_request',
        resourceId: mr.id,
        projectId: project.id,
        detail: { number, strategy, merge_sha: published.newSha, target: mr.target_branch },
      });
      return this.row(project.id, number, trx);
    });
    this.events.emit('mr.merged', {
      projectId: project.id,
      mergeRequestId: mr.id,
      number,
      title: mr.title,
      mergedBy: principal.userId,
      authorId: mr.author_id,
      targetBranch: mr.target_branch,
      mergeSha: published.newSha,
      strategy,
    });
    // The target branch moved: the same as a push to it (pipelines on the target, push webhooks).
    const commits = await commitsBetween(dir, published.targetSha, published.newSha, 100);
    this.events.emit('push.received', {
      projectId: project.id,
      ref: `refs/heads/${mr.target_branch}`,
      before: published.targetSha,
      after: published.newSha,
      created: false,
      deleted: false,
      pusherId: principal.userId,
      pusherName: principal.userName,
      commits: commits.map((c) => ({
        sha: c.sha,
        author: c.author_name,
        email: c.author_email,
        date: c.authored_at,
        message: c.title,
      })),
    });
    return this.view(merged);
  }

  private async identity(userId: string): Promise<Identity> {
    const u = await this.db
      .selectFrom('users')
      .select(['name', 'display_name', 'email'])
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    return { name: u.display_name || u.name, email: u.email };
  }

  /**
   * A push moved a branch: open MRs from it get the new head (`mr.updated`); open MRs into it whose
   * head is now contained in it were merged by the push (also how a merge whose bookkeeping was cut
   * short by a crash gets recorded).
   */
  async onPush(e: PushReceivedEvent): Promise<void> {
    if (!e.ref.startsWith('refs/heads/') || e.deleted) return;
    const branch = e.ref.slice('refs/heads/'.length);
    const open = await this.db
      .selectFrom('merge_requests')
      .select(['id', 'number', 'title', 'source_branch', 'target_branch', 'head_sha', 'author_id'])
      .where('project_id', '=', e.projectId)
      .where('status', '=', 'open')
      .where((eb) => eb.or([eb('source_branch', '=', branch), eb('target_branch', '=', branch)]))
      .execute();
    if (open.length === 0) return;
    const project = await this.projects.get(e.projectId);
    const dir = this.repo(project);
    // Commits the push added to the branch: an MR into it is merged when its head is one of them.
    let arrived: Set<string> | null = null;
    const arrivedInTarget = async (sha: string) => {
      if (e.created || /^0+$/.test(e.before)) return isAncestor(dir, sha, e.after);
      arrived ??= await newCommits(dir, e.before, e.after);
      return arrived.has(sha);
    };
    for (const mr of open) {
      if (mr.source_branch === branch && mr.head_sha !== e.after) {
        const changed = await this.db
          .updateTable('merge_requests')
          .set({ head_sha: e.after })
          .where('id', '=', mr.id)
          .where('status', '=', 'open')
          .executeTakeFirst();
        if (Number(changed.numUpdatedRows) > 0) {
          this.events.emit('mr.updated', {
            projectId: e.projectId,
            mergeRequestId: mr.id,
            number: mr.number,
            title: mr.title,
            sourceBranch: mr.source_branch,
            targetBranch: mr.target_branch,
            reason: 'push',
            headSha: e.after,
            previousHeadSha: mr.head_sha,
            actorId: e.pusherId,
          });
        }
      } else if (mr.target_branch === branch && mr.head_sha && (await arrivedInTarget(mr.head_sha))) {
        const done = await this.db.transaction().execute(async (trx) => {
          const r = await trx
            .updateTable('merge_requests')
            .set({ status: 'merged', merge_sha: e.after, merged_by: e.pusherId, merged_at: new Date() })
            .where('id', '=', mr.id)
            .where('status', '=', 'open')
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0) return false;
          await writeAudit(trx, {
            actor: { id: e.pusherId, name: e.pusherName, ip: null },
            action: 'mr.merged_by_push',
            resourceType: 'merge_request',
            resourceId: mr.id,
            projectId: e.projectId,
            detail: { number: mr.number, sha: e.after },
          });
          return true;
        });
        if (done) {
          this.events.emit('mr.merged', {
            projectId: e.projectId,
            mergeRequestId: mr.id,
            number: mr.number,
            title: mr.title,
            mergedBy: e.pusherId,
            authorId: mr.author_id,
            targetBranch: mr.target_branch,
            mergeSha: e.after,
            strategy: null,
          });
        }
      }
    }
  }
}
