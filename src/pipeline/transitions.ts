import { sql } from 'kysely';
import { systemActor, writeAudit } from '../core/audit.js';
import type { Actor } from '../core/http.js';
import type { Db, DbOrTx } from '../store/db.js';
import {
  type PipelineRow,
  type PipelineStatus,
  type PipelineStepStatus,
  pipelineStatusTransitions,
  pipelineStepStatusTransitions,
  transitionSources,
} from '../store/schema.js';
import { INTERRUPTED_ERROR } from './types.js';

/**
 * The only writer of `pipelines.status` and `pipeline_steps.status`. Every transition is a guarded
 * `UPDATE … WHERE status IN (<sources>) RETURNING`: a row another instance, the cancel API or a
 * recovery changed meanwhile is left as it is, and the caller sees that nothing moved (null / no
 * rows). The sources of each named transition are checked against the transition tables of the
 * schema when this file loads, so a transition the tables do not allow cannot be written.
 */

const PIPELINE = {
  claim: transitionSources(pipelineStatusTransitions, 'pipeline claim', ['pending'], ['running']),
  reject: transitionSources(pipelineStatusTransitions, 'pipeline reject', ['pending'], ['failure']),
  finish: transitionSources(
    pipelineStatusTransitions,
    'pipeline finish',
    ['running'],
    ['success', 'failure', 'cancelled'],
  ),
  cancel: transitionSources(
    pipelineStatusTransitions,
    'pipeline cancel',
    ['pending', 'running'],
    ['cancelled'],
  ),
} as const;

const STEP = {
  start: transitionSources(pipelineStepStatusTransitions, 'step start', ['pending'], ['running']),
  finish: transitionSources(
    pipelineStepStatusTransitions,
    'step finish',
    ['running'],
    ['success', 'failure', 'cancelled'],
  ),
  close: transitionSources(
    pipelineStepStatusTransitions,
    'step close',
    ['pending'],
    ['skipped', 'cancelled'],
  ),
  stop: transitionSources(pipelineStepStatusTransitions, 'step stop', ['running'], ['failure', 'cancelled']),
} as const;

/** Statuses a pipeline can be cancelled from (the cancel API answers 409 for the others). */
export const CANCELLABLE: readonly PipelineStatus[] = PIPELINE.cancel;

// ------------------------------------------------------------------ pipelines

/**
 * pending → running for up to `capacity` pipelines, oldest first, with this instance's lease. A
 * pipeline of a concurrency group waits while another of its group runs or an older one of it is
 * still pending (the group's pipelines run one at a time, oldest first). SKIP LOCKED: instances
 * claiming at once never take the same pipeline.
 */
export async function claimPipelines(
  db: Db,
  opts: { instanceId: string; leaseSeconds: number; capacity: number },
): Promise<PipelineRow[]> {
  const claimed = await sql<PipelineRow>`
    with picked as (
      select p.id from pipelines p
      where p.status in (${sql.join(PIPELINE.claim)})
        and (p.concurrency_group is null or not exists (
          select 1 from pipelines q
          where q.project_id = p.project_id and q.concurrency_group = p.concurrency_group and q.id <> p.id
            and (q.status = 'running' or (q.status = 'pending' and (q.created_at, q.id) < (p.created_at, p.id)))
        ))
      order by p.created_at, p.id
      limit ${opts.capacity}
      for update of p skip locked
    )
    update pipelines set status = 'running', lease_holder = ${opts.instanceId},
      lease_expires_at = now() + make_interval(secs => ${opts.leaseSeconds}), started_at = now()
    from picked where pipelines.id = picked.id and pipelines.status in (${sql.join(PIPELINE.claim)})
    returning pipelines.*`.execute(db);
  return claimed.rows;
}

/** pending → failure at creation: the definition could not be parsed (audited with the creation). */
export async function rejectPipeline(trx: DbOrTx, id: string, error: string): Promise<PipelineRow | null> {
  const row = await trx
    .updateTable('pipelines')
    .set({ status: 'failure', error, finished_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('status', 'in', PIPELINE.reject)
    .returningAll()
    .executeTakeFirst();
  return row ?? null;
}

/**
 * running → success / failure / cancelled by the executor: the lease released, the steps that never
 * started closed (`cancelled` for a cancelled pipeline, else `skipped`), one `pipeline.finish` audit
 * row by the system. Null when the pipeline was no longer running (nothing written).
 */
export async function finishPipeline(
  trx: DbOrTx,
  pipeline: Pick<PipelineRow, 'id' | 'project_id'>,
  to: 'success' | 'failure' | 'cancelled',
  error: string | null,
  auditDetail: Record<string, unknown> = {},
): Promise<PipelineRow | null> {
  const row = await trx
    .updateTable('pipelines')
    .set({ status: to, error, finished_at: sql<Date>`now()`, lease_holder: null, lease_expires_at: null })
    .where('id', '=', pipeline.id)
    .where('status', 'in', PIPELINE.finish)
    .returningAll()
    .executeTakeFirst();
  if (!row) return null;
  await closeUnstartedSteps(trx, pipeline.id, to === 'cancelled' ? 'cancelled' : 'skipped');
  await writeAudit(trx, {
    actor: systemActor,
    action: 'pipeline.finish',
    resourceType: 'pipeline',
    resourceId: pipeline.id,
    projectId: pipeline.project_id,
    detail: { status: to, ...(error ? { error } : {}), ...auditDetail },
  });
  return row;
}

/**
 * Recovery of a pipeline whose instance died while it ran: its running steps fail as interrupted,
 * then running → failure (as `finishPipeline`). Null when it was no longer running.
 */
export async function interruptPipeline(
  trx: DbOrTx,
  pipeline: Pick<PipelineRow, 'id' | 'project_id'>,
): Promise<PipelineRow | null> {
  await stopRunningSteps(trx, pipeline.id, 'failure', INTERRUPTED_ERROR);
  return finishPipeline(trx, pipeline, 'failure', INTERRUPTED_ERROR);
}

/**
 * The end of a run whose pipeline was cancelled meanwhile (by the API or a newer pipeline of its
 * concurrency group): the status stays, the lease is released and the steps still open are closed
 * as cancelled.
 */
export async function releaseCancelled(trx: DbOrTx, pipelineId: string): Promise<PipelineRow | null> {
  await stopRunningSteps(trx, pipelineId, 'cancelled', null);
  const row = await trx
    .updateTable('pipelines')
    .set({ lease_holder: null, lease_expires_at: null })
    .where('id', '=', pipelineId)
    .returningAll()
    .executeTakeFirst();
  await closeUnstartedSteps(trx, pipelineId, 'cancelled');
  return row ?? null;
}

/**
 * pending / running → cancelled by a person (audited with the previous status). A running one keeps
 * its lease: the executing instance stops its steps and releases it. Null when the pipeline had
 * finished meanwhile (the caller answers 409).
 */
export async function cancelPipeline(
  trx: DbOrTx,
  actor: Actor,
  pipeline: Pick<PipelineRow, 'id' | 'project_id' | 'status'>,
): Promise<PipelineRow | null> {
  const row = await trx
    .updateTable('pipelines')
    .set({ status: 'cancelled', finished_at: sql<Date>`now()` })
    .where('id', '=', pipeline.id)
    .where('status', 'in', PIPELINE.cancel)
    .returningAll()
    .executeTakeFirst();
  if (!row) return null;
  await closeUnstartedSteps(trx, pipeline.id, 'cancelled');
  await writeAudit(trx, {
    actor,
    action: 'pipeline.cancel',
    resourceType: 'pipeline',
    resourceId: pipeline.id,
    projectId: pipeline.project_id,
    detail: { previous_status: pipeline.status },
  });
  return row;
}

/**
 * pending / running → cancelled for the other pipelines of a concurrency group with
 * `cancel_in_progress`, when a newer one is created (audited with the creation, which lists them).
 * Returns each with the status it had.
 */
export async function supersedePipelines(
  trx: DbOrTx,
  opts: { projectId: string; group: string; by: string },
): Promise<{ id: string; previous: PipelineStatus }[]> {
  const error = `cancelled: superseded by pipeline ${opts.by} (concurrency group ${opts.group})`;
  const r = await sql<{ id: string; previous: PipelineStatus }>`
    with old as (
      select id, status from pipelines
      where project_id = ${opts.projectId} and concurrency_group = ${opts.group}
        and status in (${sql.join(PIPELINE.cancel)}) and id <> ${opts.by}
      for update
    )
    update pipelines set status = 'cancelled', error = ${error}, finished_at = now()
    from old where pipelines.id = old.id and pipelines.status in (${sql.join(PIPELINE.cancel)})
    returning pipelines.id, old.status as previous`.execute(trx);
  for (const c of r.rows) await closeUnstartedSteps(trx, c.id, 'cancelled');
  return r.rows;
}

// ------------------------------------------------------------------ steps

/** pending → running; false when the step was closed meanwhile (cancel, recovery). */
export async function startStep(trx: DbOrTx, stepId: string, startedAt: Date): Promise<boolean> {
  const r = await trx
    .updateTable('pipeline_steps')
    .set({ status: 'running', started_at: startedAt })
    .where('id', '=', stepId)
    .where('status', 'in', STEP.start)
    .returning('id')
    .executeTakeFirst();
  return r !== undefined;
}

/** running → success / failure / cancelled with the run's result; false when it was closed meanwhile. */
export async function finishStep(
  trx: DbOrTx,
  stepId: string,
  r: {
    status: Extract<PipelineStepStatus, 'success' | 'failure' | 'cancelled'>;
    exitCode: number | null;
    error: string | null;
    durationMs: number;
    finishedAt: Date;
  },
): Promise<boolean> {
  const row = await trx
    .updateTable('pipeline_steps')
    .set({
      status: r.status,
      exit_code: r.exitCode,
      error: r.error,
      duration_ms: r.durationMs,
      finished_at: r.finishedAt,
    })
    .where('id', '=', stepId)
    .where('status', 'in', STEP.finish)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** pending → skipped / cancelled for the steps of a pipeline that never started; returns how many. */
export async function closeUnstartedSteps(
  trx: DbOrTx,
  pipelineId: string,
  to: 'skipped' | 'cancelled',
): Promise<number> {
  const r = await trx
    .updateTable('pipeline_steps')
    .set({ status: to })
    .where('pipeline_id', '=', pipelineId)
    .where('status', 'in', STEP.close)
    .returning('id')
    .execute();
  return r.length;
}

/** running → failure / cancelled for the steps a dead or cancelled run left running; returns how many. */
export async function stopRunningSteps(
  trx: DbOrTx,
  pipelineId: string,
  to: 'failure' | 'cancelled',
  error: string | null,
): Promise<number> {
  const r = await trx
    .updateTable('pipeline_steps')
    .set({ status: to, error, finished_at: sql<Date>`now()` })
    .where('pipeline_id', '=', pipelineId)
    .where('status', 'in', STEP.stop)
    .returning('id')
    .execute();
  return r.length;
}
