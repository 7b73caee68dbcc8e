import { conflict, notFound, unprocessable } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import type { Page } from '../core/pagination.js';
import type { ProjectRow } from '../projects/index.js';
import type { PipelineRow } from '../store/schema.js';
import { afterCancel, type CreateOutcome, type CreatePipelineInput, createPipeline } from './create.js';
import { type DefinitionAt, definitionAt, resolveRef } from './definitions.js';
import {
  artifactOf,
  artifactsOf,
  deleteArtifact,
  expiredArtifacts,
  type ListFilter,
  latestForCommit,
  listPipelines,
  pipelineByRef,
  stepByRef,
  stepsOf,
} from './queries.js';
import { PIPELINE_REASONS } from './reasons.js';
import { fireDueSchedules, refreshSchedules } from './schedules.js';
import type { PipelineServiceDeps } from './service-deps.js';
import { CANCELLABLE, cancelPipeline } from './transitions.js';
import {
  type ArtifactView,
  artifactView,
  DEFINITION_FILE,
  FINISHED_PIPELINE,
  INJECTED_VARIABLES,
  type PipelineView,
  pipelineView,
} from './types.js';

export type { CreateOutcome, CreatePipelineInput } from './create.js';
export type { DefinitionAt } from './definitions.js';
export type { ListFilter } from './queries.js';
export type { PipelineServiceDeps } from './service-deps.js';

/**
 * Creating, reading, cancelling and retrying pipelines; schedules; artifact metadata. A pipeline is
 * addressed by id or by its number in the project (`ref`).
 */
export class PipelineService {
  constructor(private readonly deps: PipelineServiceDeps) {}

  definitionAt(repoDir: string, sha: string): Promise<DefinitionAt> {
    return definitionAt(repoDir, sha);
  }

  resolveRef(repoDir: string, ref: string): Promise<{ ref: string; sha: string } | null> {
    return resolveRef(repoDir, ref);
  }

  create(input: CreatePipelineInput): Promise<CreateOutcome> {
    return createPipeline(this.deps, input);
  }

  // ------------------------------------------------------------------ reading

  async get(projectId: string, ref: string): Promise<PipelineView> {
    const row = await this.row(projectId, ref);
    return pipelineView(row, await stepsOf(this.deps.db, row.id));
  }

  row(projectId: string, ref: string): Promise<PipelineRow> {
    return pipelineByRef(this.deps.db, projectId, ref);
  }

  /** The ids of a step given by id or name, in a pipeline given by id or number. */
  async stepIds(
    projectId: string,
    pipelineRef: string,
    stepRef: string,
  ): Promise<{ pipelineId: string; stepId: string }> {
    const row = await this.row(projectId, pipelineRef);
    const step = await stepByRef(this.deps.db, row.id, stepRef);
    return { pipelineId: row.id, stepId: step.id };
  }

  list(projectId: string, filter: ListFilter): Promise<Page<PipelineView>> {
    return listPipelines(this.deps.db, projectId, filter, (r) => pipelineView(r));
  }

  /** The newest pipeline built for a commit (merge request checks). */
  async latestForCommit(projectId: string, sha: string): Promise<PipelineView | null> {
    const row = await latestForCommit(this.deps.db, projectId, sha);
    return row ? pipelineView(row) : null;
  }

  // ------------------------------------------------------------------ actions

  /** Pending → cancelled at once; running → cancelled, and the executing instance stops its steps. */
  async cancel(actor: Actor, projectId: string, ref: string): Promise<PipelineView> {
    const project = await this.deps.projects.get(projectId);
    const { id, previous } = await this.deps.db.transaction().execute(async (trx) => {
      const found = await pipelineByRef(trx, projectId, ref);
      const row = await trx
        .selectFrom('pipelines')
        .select(['id', 'project_id', 'status'])
        .where('id', '=', found.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const refused = () =>
        conflict(`pipeline is already ${row.status}`, [
          { message: 'current state', status: row.status },
        ]).because(PIPELINE_REASONS.notCancellable);
      if (!CANCELLABLE.includes(row.status)) throw refused();
      if (!(await cancelPipeline(trx, actor, row))) throw refused();
      return { id: row.id, previous: row.status };
    });
    await afterCancel(this.deps, project, id, previous);
    return this.get(projectId, id);
  }

  async retry(
    actor: Actor,
    projectId: string,
    ref: string,
    triggeredBy: string | null,
  ): Promise<PipelineView> {
    const row = await this.row(projectId, ref);
    if (!FINISHED_PIPELINE.includes(row.status))
      throw conflict(`pipeline is ${row.status}; only a finished pipeline can be retried`, [
        { message: 'current state', status: row.status },
      ]).because(PIPELINE_REASONS.notRetryable);
    const outcome = await this.create({
      projectId,
      trigger: row.trigger,
      ref: row.git_ref,
      sha: row.commit_sha,
      actor,
      triggeredBy,
      retryOf: row,
    });
    if ('skipped' in outcome)
      throw unprocessable(`nothing to retry: ${outcome.skipped}`).because(PIPELINE_REASONS.noDefinition);
    return outcome.created;
  }

  /** API trigger: `gitRef` is a branch or tag name or a full ref. */
  async createFromApi(
    actor: Actor,
    projectId: string,
    gitRef: string,
    variables: Record<string, string>,
  ): Promise<PipelineView> {
    const injected = Object.keys(variables).filter((k) =>
      (INJECTED_VARIABLES as readonly string[]).includes(k),
    );
    if (injected.length > 0)
      throw unprocessable(`variables may not override injected variables: ${injected.join(', ')}`, [
        ...injected.map((name) => ({ path: `body.variables.${name}`, message: 'injected by the platform' })),
      ]).because(PIPELINE_REASONS.injectedVariable);
    const project = await this.deps.projects.get(projectId);
    const resolved = await resolveRef(this.deps.projects.repoDir(project), gitRef);
    if (!resolved)
      throw unprocessable(`git_ref "${gitRef}" is not a branch or tag of this project`, [
        { path: 'body.git_ref', message: 'unknown ref' },
      ]).because(PIPELINE_REASONS.unknownRef);
    const outcome = await this.create({
      projectId,
      trigger: 'api',
      ref: resolved.ref,
      sha: resolved.sha,
      actor,
      triggeredBy: actor.id,
      variables,
    });
    if ('skipped' in outcome) {
      if (outcome.skipped === 'api_disabled')
        throw unprocessable('the definition does not allow api triggers (on.api: false)').because(
          PIPELINE_REASONS.apiDisabled,
        );
      throw unprocessable(
        `the commit ${resolved.sha.slice(0, 12)} of ${resolved.ref} has no ${DEFINITION_FILE}`,
      ).because(PIPELINE_REASONS.noDefinition);
    }
    return outcome.created;
  }

  // ------------------------------------------------------------------ artifacts

  async artifacts(projectId: string, pipelineRef: string): Promise<ArtifactView[]> {
    const row = await this.row(projectId, pipelineRef);
    return (await artifactsOf(this.deps.db, row.id)).map(artifactView);
  }

  async artifactDownloadUrl(projectId: string, artifactId: string): Promise<string> {
    const row = await artifactOf(this.deps.db, projectId, artifactId);
    if (!row || (row.expires_at && new Date(row.expires_at).getTime() <= Date.now()))
      throw notFound('artifact');
    return this.deps.objects.presignGet(row.object_key, 300, { contentType: row.content_type });
  }

  /** Deletes expired artifacts (objects, then rows), except those a deployment still points at. */
  async expireArtifacts(limit = 200): Promise<number> {
    const rows = await expiredArtifacts(this.deps.db, limit);
    for (const r of rows) {
      await this.deps.objects.delete(r.object_key);
      await deleteArtifact(this.deps.db, r.id);
    }
    return rows.length;
  }

  // ------------------------------------------------------------------ schedules

  /** Mirrors `on.schedule` of the default branch's definition into pipeline_schedules. */
  refreshSchedules(project: ProjectRow, ref: string, def: DefinitionAt): Promise<void> {
    return refreshSchedules(this.deps, project, ref, def);
  }

  fireDueSchedules(limit = 50): Promise<number> {
    return fireDueSchedules(this.deps, (input) => this.create(input), limit);
  }
}
