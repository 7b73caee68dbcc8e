import { writeAudit } from '../core/audit.js';
import type { Actor } from '../core/http.js';
import { allocateNumber, type ProjectRow } from '../projects/index.js';
import type { PipelineRow, PipelineStatus, PipelineTrigger } from '../store/schema.js';
import { matchesMrAction, matchesPush, stepApplies } from './definition.js';
import type { MrAction, PipelineDefinition } from './definition-types.js';
import { commitAt, type DefinitionAt, definitionAt } from './definitions.js';
import { expandVariables, toFinishedEvent } from './events.js';
import { insertPipeline, pipelineByRef } from './queries.js';
import type { PipelineServiceDeps } from './service-deps.js';
import { rejectPipeline, supersedePipelines } from './transitions.js';
import { branchOf, channels, type PipelineView, pipelineView } from './types.js';

export interface CreatePipelineInput {
  projectId: string;
  trigger: PipelineTrigger;
  /** Full ref: refs/heads/main, refs/tags/v1. */
  ref: string;
  sha: string;
  actor: Actor;
  triggeredBy: string | null;
  variables?: Record<string, string>;
  mrId?: string | null;
  mrAction?: MrAction;
  /** Retry: the finished pipeline whose definition, ref, commit and variables are reused. */
  retryOf?: PipelineRow;
  /** The definition at `sha` when the caller has read it already (the push trigger does, for schedules). */
  definition?: DefinitionAt;
}

/** Why no pipeline was created (push/mr/schedule triggers skip silently; the API answers 422). */
export type CreateOutcome =
  | { created: PipelineView; cancelled: string[] }
  | { skipped: 'no_definition' | 'skip_ci' | 'not_matching' | 'api_disabled' };

/**
 * Reads `.platform.yaml` at the commit (or reuses a retried pipeline's definition) and queues a
 * pipeline with its applicable steps, in one transaction with its number and audit row. A broken
 * definition gives a pipeline in `failure` carrying the parser's message.
 */
export async function createPipeline(
  deps: PipelineServiceDeps,
  input: CreatePipelineInput,
): Promise<CreateOutcome> {
  const project = await deps.projects.get(input.projectId);
  const repoDir = deps.projects.repoDir(project);
  let def: DefinitionAt;
  let commit: { sha: string; message: string };
  if (input.retryOf) {
    commit = { sha: input.sha, message: input.retryOf.commit_message };
    def = input.retryOf.definition
      ? { kind: 'ok', definition: input.retryOf.definition as unknown as PipelineDefinition }
      : await definitionAt(repoDir, input.sha);
  } else {
    def = input.definition ?? (await definitionAt(repoDir, input.sha));
    if (def.kind === 'missing') return { skipped: 'no_definition' };
    commit = await commitAt(repoDir, input.sha);
    // A manual run (api) is asked for explicitly: the commit message does not veto it.
    if (input.trigger !== 'api' && /\[(skip ci|ci skip)\]/i.test(commit.message))
      return { skipped: 'skip_ci' };
  }
  if (def.kind === 'missing') return { skipped: 'no_definition' };
  const { sha, message } = commit;
  if (def.kind === 'ok' && !input.retryOf) {
    const d = def.definition;
    if (input.trigger === 'push' && !matchesPush(d, input.ref)) return { skipped: 'not_matching' };
    if (input.trigger === 'mr' && !(input.mrAction && matchesMrAction(d, input.mrAction)))
      return { skipped: 'not_matching' };
    if (input.trigger === 'api' && !d.on.api) return { skipped: 'api_disabled' };
  }

  const variables = input.retryOf?.variables ?? input.variables ?? {};
  const branch = branchOf(input.ref);
  const definition = def.kind === 'ok' ? def.definition : null;
  const steps = definition ? definition.steps.filter((s) => stepApplies(s, branch)) : [];
  const group = definition?.concurrency
    ? expandVariables(definition.concurrency.group, groupVariables(project, input.ref, sha))
    : null;
  const invalid = def.kind === 'invalid' ? def.error : null;

  const { row, stepRows, cancelled } = await deps.db.transaction().execute(async (trx) => {
    const inserted = await insertPipeline(
      trx,
      {
        project_id: project.id,
        number: await allocateNumber(trx, project.id, 'pipeline'),
        trigger: input.trigger,
        git_ref: input.ref,
        commit_sha: sha,
        commit_message: message,
        triggered_by: input.triggeredBy,
        mr_id: input.mrId ?? input.retryOf?.mr_id ?? null,
        retry_of: input.retryOf?.id ?? null,
        concurrency_group: group,
        variables,
        definition,
      },
      steps.map((s) => ({
        name: s.name,
        image: s.image,
        commands: s.commands,
        environment: s.environment,
        // A dependency excluded by its `when` filter is not part of this run.
        depends_on: s.depends_on.filter((d) => steps.some((x) => x.name === d)),
        allow_failure: s.allow_failure,
        timeout_seconds: s.timeout_seconds,
        publish: s.publish ?? null,
      })),
    );
    const row =
      invalid === null
        ? inserted.row
        : ((await rejectPipeline(trx, inserted.row.id, invalid)) ?? inserted.row);
    const cancelled =
      group && definition?.concurrency?.cancel_in_progress
        ? await supersedePipelines(trx, { projectId: project.id, group, by: row.id })
        : [];
    await writeAudit(trx, {
      actor: input.actor,
      action: input.retryOf ? 'pipeline.retry' : 'pipeline.create',
      resourceType: 'pipeline',
      resourceId: row.id,
      projectId: project.id,
      detail: {
        trigger: input.trigger,
        ref: input.ref,
        sha,
        status: row.status,
        ...(input.retryOf ? { retry_of: input.retryOf.id } : {}),
        ...(cancelled.length > 0 ? { cancelled: cancelled.map((c) => c.id) } : {}),
        ...(Object.keys(variables).length > 0 ? { variables: Object.keys(variables) } : {}),
      },
    });
    return { row, stepRows: inserted.steps, cancelled };
  });

  for (const c of cancelled) await afterCancel(deps, project, c.id, c.previous);
  if (row.status === 'failure') deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
  else deps.onQueued();
  return { created: pipelineView(row, stepRows), cancelled: cancelled.map((c) => c.id) };
}

/** After a cancel commits: the executing instance is told (a running one), and `pipeline.finished` emitted. */
export async function afterCancel(
  deps: PipelineServiceDeps,
  project: ProjectRow,
  id: string,
  previous: PipelineStatus,
): Promise<void> {
  // A running one is stopped by the instance executing it (told now, and it checks at heartbeat).
  if (previous === 'running') {
    await deps.pubsub
      .publish(channels.cancel, { pipelineId: id })
      .catch((err: unknown) => deps.log.warn({ err, pipelineId: id }, 'publishing a cancel failed'));
  }
  const row = await pipelineByRef(deps.db, project.id, id).catch(() => null);
  if (row) deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
}

function groupVariables(project: ProjectRow, ref: string, sha: string): Record<string, string> {
  return {
    PROJECT: `${project.owner_name}/${project.name}`,
    PLATFORM_PROJECT_ID: project.id,
    PLATFORM_PROJECT_NAME: project.name,
    COMMIT_REF: ref,
    COMMIT_BRANCH: branchOf(ref) ?? '',
    COMMIT_SHA: sha,
  };
}
