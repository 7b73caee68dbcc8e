import { conflict } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import type { Page } from '../core/pagination.js';
import type { PushReceivedEvent } from '../git/index.js';
import type { CheckViewer, MrContext } from './context.js';
import { type CreateInput, createMergeRequest } from './create.js';
import { mergeRequestDetail } from './detail.js';
import { type MergeInput, mergeMergeRequest, recoverMerges } from './merge.js';
import { onPush } from './push.js';
import { findMr, type ListFilter, listMrs, type MergeRequestView, mrView } from './queries.js';
import { BranchQueue } from './queue.js';
import { MR_REASONS } from './reasons.js';
import { type ReviewInput, reviewMergeRequest } from './reviews.js';
import { type UpdateInput, updateMergeRequest } from './update.js';

export type { MergeStrategy } from './git.js';
export type { ListFilter, MergeRequestView } from './queries.js';

/**
 * Merge requests, the module's public façade: each use case lives in its own file (create, update,
 * reviews, detail, merge, push) and gets the shared context. Merges into one target branch and
 * state changes of the merge requests into it are queued per instance (`BranchQueue`).
 */
export class MergeRequestsService {
  private readonly queue = new BranchQueue();

  constructor(private readonly c: MrContext) {}

  async get(projectId: string, number: number): Promise<MergeRequestView> {
    return mrView(await findMr(this.c.db, projectId, number));
  }

  create(
    actor: Actor,
    principal: Principal,
    projectId: string,
    input: CreateInput,
  ): Promise<MergeRequestView> {
    return createMergeRequest(this.c, actor, principal, projectId, input);
  }

  list(projectId: string, filter: ListFilter): Promise<Page<MergeRequestView>> {
    return listMrs(this.c.db, projectId, filter);
  }

  detail(projectId: string, number: number, viewer: CheckViewer) {
    return mergeRequestDetail(this.c, projectId, number, viewer);
  }

  async update(
    actor: Actor,
    principal: Principal,
    projectId: string,
    number: number,
    input: UpdateInput,
  ): Promise<MergeRequestView> {
    const before = await findMr(this.c.db, projectId, number);
    return this.queue.run(projectId, before.target_branch, () =>
      updateMergeRequest(this.c, actor, principal, projectId, before, input),
    );
  }

  review(actor: Actor, principal: Principal, projectId: string, number: number, input: ReviewInput) {
    return reviewMergeRequest(this.c, actor, principal, projectId, number, input);
  }

  async merge(
    actor: Actor,
    principal: Principal,
    projectId: string,
    number: number,
    input: MergeInput,
  ): Promise<MergeRequestView> {
    const project = await this.c.projects.get(projectId);
    if (!project.is_active) throw conflict('the project is archived').because(MR_REASONS.projectArchived);
    const first = await findMr(this.c.db, projectId, number);
    return this.queue.run(projectId, first.target_branch, () =>
      mergeMergeRequest(this.c, actor, principal, project, number, input),
    );
  }

  /** Completes or drops merges a crash interrupted between the branch swap and the record. */
  recoverMerges(graceMs?: number): Promise<number> {
    return recoverMerges(this.c, graceMs);
  }

  onPush(e: PushReceivedEvent): Promise<void> {
    return onPush(this.c, e);
  }
}
