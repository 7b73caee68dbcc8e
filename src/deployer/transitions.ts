import type { Selectable, Updateable } from 'kysely';
import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import {
  type DeploymentCurrentStatus,
  type DeploymentDesiredStatus,
  type DeploymentsTable,
  deploymentCurrentStatusTransitions,
  deploymentDesiredStatusTransitions,
  transitionSources,
} from '../store/schema.js';

export type DeploymentRow = Selectable<DeploymentsTable>;

/**
 * The only writer of `deployments.desired_status` and `deployments.current_status`: named
 * transitions, each a guarded `UPDATE … WHERE status IN (<sources>) RETURNING`, their sources checked
 * against the schema's tables when this file loads. A lost race returns null.
 */

const CURRENT = {
  begin: transitionSources(
    deploymentCurrentStatusTransitions,
    'deployment begin',
    ['pending', 'healthy', 'degraded', 'failed', 'stopped'],
    'syncing',
  ),
  healthy: transitionSources(
    deploymentCurrentStatusTransitions,
    'deployment healthy',
    ['syncing'],
    'healthy',
  ),
  failed: transitionSources(deploymentCurrentStatusTransitions, 'deployment failed', ['syncing'], 'failed'),
  stopped: transitionSources(
    deploymentCurrentStatusTransitions,
    'deployment stopped',
    ['pending', 'syncing', 'healthy', 'degraded', 'failed'],
    'stopped',
  ),
} as const;

const DESIRED = {
  stop: transitionSources(
    deploymentDesiredStatusTransitions,
    'deployment stop',
    ['active', 'rollback'],
    'stopped',
  ),
  start: transitionSources(
    deploymentDesiredStatusTransitions,
    'deployment start',
    ['stopped', 'rollback'],
    'active',
  ),
  rollback: transitionSources(
    deploymentDesiredStatusTransitions,
    'deployment rollback',
    ['active', 'stopped'],
    'rollback',
  ),
  // A publish wins over a stop or a rollback asked earlier (the newest version should run).
  publish: transitionSources(
    deploymentDesiredStatusTransitions,
    'deployment publish',
    ['stopped', 'rollback'],
    'active',
  ),
} as const;

/** The desired statuses a request may move from, by target (the API answers 409 for the others). */
export function desiredSources(to: DeploymentDesiredStatus): readonly DeploymentDesiredStatus[] {
  return to === 'stopped' ? DESIRED.stop : to === 'active' ? DESIRED.start : DESIRED.rollback;
}

/** A new environment asked for by a promotion: born `stopped` (generation 0); the request then moves it. */
export async function createDeployment(
  trx: DbOrTx,
  projectId: string,
  environment: string,
  requestedBy: string | null,
): Promise<DeploymentRow> {
  return trx
    .insertInto('deployments')
    .values({
      project_id: projectId,
      environment,
      desired_status: 'stopped',
      requested_by: requestedBy,
      generation: 0,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** A change of what should run (desired status and/or spec), guarded on the desired status seen. */
export async function requestDesired(
  trx: DbOrTx,
  id: string,
  from: DeploymentDesiredStatus,
  set: Updateable<DeploymentsTable>,
): Promise<DeploymentRow | null> {
  const to = set.desired_status as DeploymentDesiredStatus | undefined;
  if (to !== undefined && to !== from && !desiredSources(to).includes(from)) return null;
  const row = await trx
    .updateTable('deployments')
    .set({ ...set, generation: sql<number>`generation + 1` })
    .where('id', '=', id)
    .where('desired_status', '=', from)
    .returningAll()
    .executeTakeFirst();
  return row ?? null;
}

/** any observed state → syncing: the reconciler starts on this row (it holds its lease). */
export async function beginReconcile(
  trx: DbOrTx,
  id: string,
  message: string,
): Promise<DeploymentRow | null> {
  const row = await trx
    .updateTable('deployments')
    .set({ current_status: 'syncing', status_message: message })
    .where('id', '=', id)
    .where('current_status', 'in', CURRENT.begin)
    .returningAll()
    .executeTakeFirst();
  return row ?? null;
}

/**
 * syncing → healthy / failed, or (nearly) anything → stopped: the outcome of a reconcile, with the
 * generation it observed and what now runs. `extra` carries refs restored by a rollback.
 */
export async function finishReconcile(
  trx: DbOrTx,
  id: string,
  to: Extract<DeploymentCurrentStatus, 'healthy' | 'failed' | 'stopped'>,
  set: Updateable<DeploymentsTable>,
): Promise<DeploymentRow | null> {
  let q = trx
    .updateTable('deployments')
    .set({ ...set, current_status: to })
    .where('id', '=', id)
    .where('current_status', 'in', CURRENT[to]);
  // A finished rollback hands the desired state back (rollback → active with the restored refs).
  if (set.desired_status)
    q = q.where('desired_status', 'in', desiredSources(set.desired_status as DeploymentDesiredStatus));
  const row = await q.returningAll().executeTakeFirst();
  return row ?? null;
}

/** active/rollback → stopped for an environment the system tears down (previews). */
export async function requestStop(trx: DbOrTx, projectId: string, environment: string): Promise<boolean> {
  const row = await trx
    .updateTable('deployments')
    .set({ desired_status: 'stopped', requested_by: null, generation: sql<number>`generation + 1` })
    .where('project_id', '=', projectId)
    .where('environment', '=', environment)
    .where('desired_status', 'in', DESIRED.stop)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** What a publish asks to run in an environment (the pipeline's hand-off, `recordPublication`). */
export interface PublishedRefs {
  projectId: string;
  environment: string;
  imageRef: string | null;
  artifactId: string | null;
  pipelineId: string;
  commitSha: string;
  deployedBy: string | null;
}

/**
 * (none) / stopped / rollback / active → active with the published refs: a new row, or the existing
 * one pointed at the new version with its generation bumped so the reconciler rolls it out.
 */
export async function publishDesired(
  trx: DbOrTx,
  p: PublishedRefs,
): Promise<Pick<DeploymentRow, 'id' | 'project_id' | 'environment' | 'current_status' | 'deployed_by'>> {
  const row = await trx
    .insertInto('deployments')
    .values({
      project_id: p.projectId,
      environment: p.environment,
      image_ref: p.imageRef,
      artifact_id: p.artifactId,
      pipeline_id: p.pipelineId,
      commit_sha: p.commitSha,
      desired_status: 'active',
      deployed_by: p.deployedBy,
      deployed_at: sql<Date>`now()`,
      requested_by: p.deployedBy,
    })
    .onConflict((oc) =>
      oc
        .columns(['project_id', 'environment'])
        .doUpdateSet((eb) => ({
          image_ref: eb.ref('excluded.image_ref'),
          artifact_id: eb.ref('excluded.artifact_id'),
          pipeline_id: eb.ref('excluded.pipeline_id'),
          commit_sha: eb.ref('excluded.commit_sha'),
          desired_status: 'active',
          generation: eb(eb.ref('deployments.generation'), '+', 1),
          deployed_by: eb.ref('excluded.deployed_by'),
          requested_by: eb.ref('excluded.requested_by'),
          deployed_at: eb.ref('excluded.deployed_at'),
        }))
        .where('deployments.desired_status', 'in', ['active', ...DESIRED.publish]),
    )
    .returning(['id', 'project_id', 'environment', 'current_status', 'deployed_by'])
    .executeTakeFirst();
  if (!row) throw new Error(`deployment ${p.environment}: the publish transition found no allowed source`);
  return row;
}
