import { writeAudit } from '../core/audit.js';
import { type AppError, conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { DeploymentDesiredStatus, JsonObject } from '../store/schema.js';
import { unifiedDiff } from './diff.js';
import { type ManifestDeps, renderDeployment } from './manifests.js';
import type { DeployCheckViewer, DeployMrCheckView } from './mr-checks.js';
import { DEPLOY_REASONS } from './reasons.js';
import type { DeploymentHistoryView, DeploymentView } from './schemas.js';
import { createDeployment, type DeploymentRow, desiredSources, requestDesired } from './transitions.js';

export interface DeploymentPatch {
  image_ref?: string | null | undefined;
  artifact_id?: string | null | undefined;
  commit_sha?: string | null | undefined;
  desired_status?: 'active' | 'stopped' | undefined;
  values_override?: JsonObject | undefined;
  ops_repo_id?: string | null | undefined;
  auto_rollback?: boolean | undefined;
  namespace?: string | null | undefined;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

export function toDeploymentView(row: DeploymentRow): DeploymentView & { route_key?: string } {
  const target =
    row.runtime.target === 'local' || row.runtime.target === 'kubernetes' ? row.runtime.target : null;
  return {
    id: row.id,
    project_id: row.project_id,
    environment: row.environment,
    ops_repo_id: row.ops_repo_id,
    image_ref: row.image_ref,
    artifact_id: row.artifact_id,
    pipeline_id: row.pipeline_id,
    commit_sha: row.commit_sha,
    values_override: row.values_override,
    namespace: row.namespace,
    auto_rollback: row.auto_rollback,
    desired_status: row.desired_status,
    current_status: row.current_status,
    status_message: row.status_message,
    generation: row.generation,
    observed_generation: row.observed_generation,
    current_ops_sha: row.current_ops_sha,
    target,
    url: typeof row.runtime.route === 'string' ? row.runtime.route : null,
    deployed_by: row.deployed_by,
    deployed_at: iso(row.deployed_at),
    updated_at: iso(row.updated_at)!,
  };
}

/** The deployer's public service: what the API reads and asks for; the reconciler does the work. */
export class DeployerService {
  /** Asks the reconciler for a pass (after a commit). */
  onChanged: () => void = () => {};
  /** Live status of the local target. */
  live: (deploymentId: string) => { serving_here: boolean; port: number | null } = () => ({
    serving_here: false,
    port: null,
  });

  /** The deploy/diff check posted on a merge request's head (the merge request module shows it). */
  mergeRequestChecks: (
    mergeRequestId: string,
    headSha: string,
    viewer?: DeployCheckViewer,
  ) => Promise<DeployMrCheckView[]> = async () => [];

  constructor(
    private readonly db: Db,
    private readonly render: ManifestDeps,
    private readonly publicUrl: string,
  ) {}

  /** The environments of a project with what should run there. */
  async list(projectId: string) {
    return this.db
      .selectFrom('deployments')
      .selectAll()
      .where('project_id', '=', projectId)
      .orderBy('environment')
      .execute();
  }

  async listViews(projectId: string): Promise<Page<DeploymentView>> {
    const rows = await this.list(projectId);
    return { items: rows.map((r) => this.view(r)), next_cursor: null };
  }

  private view(row: DeploymentRow): DeploymentView {
    const v = toDeploymentView(row);
    if (row.runtime.target === 'local' && typeof row.runtime.route_key === 'string')
      v.url = `${this.publicUrl.replace(/\/$/, '')}/apps/${row.runtime.route_key}/`;
    return v;
  }

  async find(projectId: string, environment: string): Promise<DeploymentRow> {
    const row = await this.db
      .selectFrom('deployments')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('environment', '=', environment)
      .executeTakeFirst();
    if (!row) throw notFound('deployment').because(DEPLOY_REASONS.notFound);
    return row;
  }

  async get(projectId: string, environment: string) {
    const row = await this.find(projectId, environment);
    const history = await this.history(projectId, environment, { limit: 10 });
    return { ...this.view(row), live: this.live(row.id), history: history.items };
  }

  async history(
    projectId: string,
    environment: string,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<DeploymentHistoryView>> {
    const row = await this.find(projectId, environment);
    return pageByTime(
      this.db
        .selectFrom('deployment_history as h')
        .leftJoin('users as u', 'u.id', 'h.actor_id')
        .selectAll('h')
        .select('u.name as actor_name')
        .where('h.deployment_id', '=', row.id),
      { time: 'h.created_at', id: 'h.id' },
      page,
      (h) => ({
        id: h.id,
        action: h.action,
        result: h.result,
        image_ref: h.image_ref,
        artifact_id: h.artifact_id,
        pipeline_id: h.pipeline_id,
        commit_sha: h.commit_sha,
        ops_sha: h.ops_sha,
        actor_id: h.actor_id,
        actor_name: h.actor_name,
        message: h.message,
        duration_ms: h.duration_ms,
        created_at: iso(h.created_at)!,
      }),
    );
  }

  /**
   * Changes what should run (refs, desired status, values, ops repo): the generation is bumped and
   * the reconciler rolls it out. An unknown environment is created when refs are given (promotion).
   */
  async patch(
    actor: Actor,
    projectId: string,
    environment: string,
    body: DeploymentPatch,
  ): Promise<DeploymentView> {
    if (body.artifact_id) {
      const a = await this.db
        .selectFrom('artifacts')
        .select('id')
        .where('id', '=', body.artifact_id)
        .where('project_id', '=', projectId)
        .executeTakeFirst();
      if (!a) throw notFound('artifact').because(DEPLOY_REASONS.artifactNotFound);
    }
    if (body.ops_repo_id) {
      const r = await this.db
        .selectFrom('ops_repos')
        .select('id')
        .where('id', '=', body.ops_repo_id)
        .executeTakeFirst();
      if (!r) throw notFound('ops repo').because(DEPLOY_REASONS.opsRepoNotFound);
    }
    const set = {
      ...(body.image_ref !== undefined ? { image_ref: body.image_ref } : {}),
      ...(body.artifact_id !== undefined ? { artifact_id: body.artifact_id } : {}),
      ...(body.commit_sha !== undefined ? { commit_sha: body.commit_sha } : {}),
      ...(body.values_override !== undefined
        ? { values_override: JSON.stringify(body.values_override) }
        : {}),
      ...(body.ops_repo_id !== undefined ? { ops_repo_id: body.ops_repo_id } : {}),
      ...(body.auto_rollback !== undefined ? { auto_rollback: body.auto_rollback } : {}),
      ...(body.namespace !== undefined ? { namespace: body.namespace } : {}),
    };
    const row = await this.db.transaction().execute(async (trx) => {
      let cur = await trx
        .selectFrom('deployments')
        .selectAll()
        .where('project_id', '=', projectId)
        .where('environment', '=', environment)
        .forUpdate()
        .executeTakeFirst();
      if (!cur) {
        if (!body.image_ref && !body.artifact_id && !body.commit_sha)
          throw notFound('deployment').because(DEPLOY_REASONS.notFound);
        cur = await createDeployment(trx, projectId, environment, actor.id);
        if (!body.desired_status) body.desired_status = 'active';
      }
      const to = body.desired_status;
      if (to && to !== cur.desired_status && !desiredSources(to).includes(cur.desired_status)) {
        throw this.stateConflict(cur, `the deployment is ${cur.desired_status}; it cannot become ${to} now`);
      }
      const written = await requestDesired(trx, cur.id, cur.desired_status, {
        ...set,
        ...(to ? { desired_status: to } : {}),
        requested_by: actor.id,
        ...(body.image_ref !== undefined || body.artifact_id !== undefined || body.commit_sha !== undefined
          ? { deployed_by: actor.id, deployed_at: new Date() }
          : {}),
      });
      if (!written) throw this.stateConflict(cur, 'the deployment changed meanwhile');
      await writeAudit(trx, {
        actor,
        action: 'deployment.update',
        resourceType: 'deployment',
        resourceId: written.id,
        projectId,
        detail: {
          environment,
          ...body,
          values_override: body.values_override ? Object.keys(body.values_override) : undefined,
        },
      });
      return written;
    });
    this.onChanged();
    return this.view(row);
  }

  /** Asks for a rollback to the previous successful version, or to a chosen history entry. */
  async rollback(
    actor: Actor,
    projectId: string,
    environment: string,
    historyId: string | undefined,
  ): Promise<DeploymentView> {
    const cur = await this.find(projectId, environment);
    let q = this.db
      .selectFrom('deployment_history')
      .select(['id'])
      .where('deployment_id', '=', cur.id)
      .where('result', '=', 'success')
      .where('action', 'in', ['deploy', 'rollback'])
      .where('manifests', 'is not', null);
    if (historyId) q = q.where('id', '=', historyId);
    else if (typeof cur.runtime.history_id === 'string') q = q.where('id', '<>', cur.runtime.history_id);
    const target = await q.limit(1).executeTakeFirst();
    if (!target) {
      if (historyId) throw notFound('history entry').because(DEPLOY_REASONS.historyNotFound);
      throw conflict('there is no earlier successful version to roll back to').because(
        DEPLOY_REASONS.noPreviousVersion,
      );
    }
    if (!desiredSources('rollback').includes(cur.desired_status))
      throw this.stateConflict(cur, `a ${cur.desired_status} is in progress`);
    const row = await this.db.transaction().execute(async (trx) => {
      const written = await requestDesired(trx, cur.id, cur.desired_status, {
        desired_status: 'rollback',
        rollback_to: historyId ?? null,
        requested_by: actor.id,
      });
      if (!written) throw this.stateConflict(cur, 'the deployment changed meanwhile');
      await writeAudit(trx, {
        actor,
        action: 'deployment.rollback',
        resourceType: 'deployment',
        resourceId: cur.id,
        projectId,
        detail: { environment, history_id: historyId ?? null },
      });
      return written;
    });
    this.onChanged();
    return this.view(row);
  }

  /** The manifests the next apply would apply against what runs now, as a unified diff. */
  async diff(projectId: string, environment: string) {
    const row = await this.find(projectId, environment);
    const current =
      typeof row.runtime.manifests === 'string' && !row.runtime.stopped ? row.runtime.manifests : null;
    let desired: string | null = null;
    let error: string | null = null;
    try {
      desired = (await renderDeployment(this.render, row, row)).manifests;
    } catch (err) {
      error = (err as Error).message;
    }
    const diff = desired === null ? '' : await unifiedDiff(current ?? '', desired, environment);
    return { current, desired, error, changed: desired !== null && desired !== current, diff };
  }

  private stateConflict(row: DeploymentRow, message: string): AppError {
    return conflict(message, [
      { message: 'current state', desired_status: row.desired_status, current_status: row.current_status },
    ]).because(DEPLOY_REASONS.stateConflict);
  }
}

export type { DeploymentDesiredStatus };
