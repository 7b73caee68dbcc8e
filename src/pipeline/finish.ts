import { announcePublication, type RecordedDeployment, recordPublication } from '../deployer/index.js';
import type { PipelineRow } from '../store/schema.js';
import { toFinishedEvent } from './events.js';
import type { ExecutorDeps, FinishingRun } from './run-context.js';
import { finishPipeline, releaseCancelled } from './transitions.js';
import { INTERRUPTED_ERROR } from './types.js';

/**
 * The one transaction that ends a run: the pipeline's final status (only when it is still running
 * and still this instance's — a recovery elsewhere may have taken it), remaining steps, artifacts,
 * the publications handed to the deployer, audit; the events after the commit.
 */
export async function finishRun(
  deps: ExecutorDeps,
  run: FinishingRun,
  computed: 'success' | 'failure',
  error: string | null,
): Promise<void> {
  const { row, project, running } = run;
  // Every step row is written before the pipeline's final state (and the close of unstarted steps).
  await run.stepWrites
    .drained()
    .catch((err: unknown) => deps.log.error({ err, pipelineId: row.id }, 'step rows not all written'));
  let status: 'success' | 'failure' | 'cancelled' = computed;
  let finalError = error;
  if (running.reason === 'shutdown') {
    status = 'failure';
    finalError = INTERRUPTED_ERROR;
  } else if (running.reason === 'cancel') status = 'cancelled';
  const outcome = await deps.db.transaction().execute(async (trx) => {
    const cur = await trx
      .selectFrom('pipelines')
      .select(['status', 'lease_holder'])
      .where('id', '=', row.id)
      .forUpdate()
      .executeTakeFirst();
    if (!cur || cur.lease_holder !== deps.instanceId) return null; // recovered by another instance meanwhile
    const stillRunning = cur.status === 'running';
    const succeeded = stillRunning && status === 'success';
    const artifactIds = new Map<string, string>();
    for (const a of run.artifacts) {
      const published = succeeded && run.publications.some((p) => p.artifactName === a.name);
      const inserted = await trx
        .insertInto('artifacts')
        .values({
          pipeline_id: row.id,
          project_id: row.project_id,
          step_id: a.stepId,
          name: a.name,
          object_key: a.key,
          content_type: a.contentType,
          size_bytes: a.size,
          sha256: a.sha256,
          // A published artifact must outlive any expiry: the deployer may roll it out later.
          expires_at: published
            ? null
            : (a.expiresAt ?? new Date(Date.now() + deps.options.artifactExpirySeconds * 1000)),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      artifactIds.set(a.name, inserted.id);
    }
    const deployments: RecordedDeployment[] = [];
    if (succeeded) {
      for (const p of run.publications) {
        deployments.push(
          await recordPublication(trx, {
            projectId: row.project_id,
            environment: p.environment,
            imageRef: p.imageRef,
            artifactId: p.artifactName ? (artifactIds.get(p.artifactName) ?? null) : null,
            pipelineId: row.id,
            commitSha: row.commit_sha,
            deployedBy: row.triggered_by,
          }),
        );
      }
    }
    let finished: PipelineRow | null = null;
    if (stillRunning) {
      finished = await finishPipeline(
        trx,
        row,
        status,
        finalError,
        deployments.length > 0 ? { deployments: deployments.map((d) => d.environment) } : {},
      );
    } else await releaseCancelled(trx, row.id);
    return { finished, deployments };
  });
  if (!outcome) return;
  if (outcome.finished) deps.events.emit('pipeline.finished', toFinishedEvent(outcome.finished, project));
  for (const d of outcome.deployments) announcePublication(deps.events, d, project.owner_id);
}
