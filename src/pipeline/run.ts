import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RepoSource, Workspace } from '../runners/types.js';
import type { PipelineRow } from '../store/schema.js';
import type { PipelineDefinition } from './definition-types.js';
import { finishRun } from './finish.js';
import type { ExecutorDeps, FinishingRun, RunContext, RunningPipeline } from './run-context.js';
import { collectArtifacts } from './staging.js';
import { runStepGraph } from './step-graph.js';
import { runStep } from './step-run.js';
import { StepRowWrites } from './step-writes.js';

/**
 * Runs one claimed pipeline: a workspace, the step graph, the artifacts, the finishing
 * transaction; and whatever happens, the clone token revoked and the workspace removed.
 */
export async function executePipeline(
  deps: ExecutorDeps,
  row: PipelineRow,
  running: RunningPipeline,
): Promise<void> {
  const project = await deps.projects.get(row.project_id);
  const steps = await deps.db
    .selectFrom('pipeline_steps')
    .selectAll()
    .where('pipeline_id', '=', row.id)
    .orderBy('position')
    .execute();
  const definition = row.definition as unknown as PipelineDefinition | null;
  const logDir = path.join(deps.options.stateDir, 'logs', row.id);
  await mkdir(logDir, { recursive: true });
  const source: RepoSource = {
    repoDir: deps.projects.repoDir(project),
    cloneUrl: `${deps.options.publicUrl}/${project.owner_name}/${project.name}.git`,
    sha: row.commit_sha,
  };
  let workspace: Workspace | null = null;
  const run: FinishingRun = {
    row,
    project,
    source,
    running,
    logDir,
    artifacts: [],
    publications: [],
    artifactNames: new Set(),
    logUploads: [],
    stepWrites: new StepRowWrites(deps.db, deps.log),
    workspace: null,
  };
  let credential: { revoke(): Promise<void> } | undefined;
  try {
    const clone = await deps.cloneToken?.(row, project);
    credential = clone;
    if (clone) source.cloneToken = clone.token;
    try {
      workspace = await deps.runner.prepareWorkspace(row.id, source);
    } catch (err) {
      await finishRun(deps, run, 'failure', `workspace: ${(err as Error).message}`);
      return;
    }
    const ctx: RunContext = { ...run, workspace };
    run.workspace = workspace;
    const failed = await runStepGraph(steps, {
      aborted: () => running.abort.signal.aborted,
      runStep: (step) => runStep(deps, ctx, step),
      failsPipeline: (step, result) =>
        (result === 'failure' && !step.allow_failure) ||
        (result === 'cancelled' && running.reason !== 'cancel'),
    }).finally(() => Promise.all(run.logUploads));
    if (!running.abort.signal.aborted) await collectArtifacts(deps, ctx, definition?.artifacts ?? []);
    await finishRun(deps, ctx, failed ? 'failure' : 'success', null);
  } catch (err) {
    // A platform-side problem (database, object store, clone token): the pipeline fails now with
    // the reason, instead of staying `running` until its lease expires.
    deps.log.error({ err, pipelineId: row.id }, 'pipeline execution failed');
    await finishRun(deps, run, 'failure', `platform error: ${(err as Error).message}`);
  } finally {
    await credential
      ?.revoke()
      .catch((err: unknown) => deps.log.warn({ err }, 'revoking the clone token failed'));
    await workspace
      ?.dispose()
      .catch((err: unknown) => deps.log.warn({ err }, 'disposing a workspace failed'));
    await rm(logDir, { recursive: true, force: true }).catch(() => {});
  }
}
