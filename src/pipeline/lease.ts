import { sql } from 'kysely';
import type { PipelineRow } from '../store/schema.js';
import { toFinishedEvent } from './events.js';
import type { AbortReason, ExecutorDeps } from './run-context.js';
import { interruptPipeline, releaseCancelled } from './transitions.js';

/**
 * Renews the leases of this instance's running pipelines. Returns the ones whose lease could not
 * be renewed, with why: `cancel` when the pipeline was cancelled (still leased to this instance),
 * else `lost` (another instance recovered it).
 */
export async function renewLeases(
  deps: Pick<ExecutorDeps, 'db' | 'instanceId' | 'options'>,
  ids: string[],
): Promise<{ id: string; reason: AbortReason }[]> {
  if (ids.length === 0) return [];
  const kept = await deps.db
    .updateTable('pipelines')
    .set({ lease_expires_at: sql<Date>`now() + make_interval(secs => ${deps.options.leaseSeconds})` })
    .where('id', 'in', ids)
    .where('lease_holder', '=', deps.instanceId)
    .where('status', '=', 'running')
    .returning('id')
    .execute();
  const alive = new Set(kept.map((k) => k.id));
  const stopped: { id: string; reason: AbortReason }[] = [];
  for (const id of ids) {
    if (alive.has(id)) continue;
    const row = await deps.db
      .selectFrom('pipelines')
      .select(['status', 'lease_holder'])
      .where('id', '=', id)
      .executeTakeFirst();
    stopped.push({
      id,
      reason: row?.status === 'cancelled' && row.lease_holder === deps.instanceId ? 'cancel' : 'lost',
    });
  }
  return stopped;
}

/**
 * Fails the pipelines whose instance died (lease expired) as interrupted, and closes the steps of
 * cancelled pipelines whose instance died before it could; then lets the runner kill leftover
 * processes and remove workspaces. `mine` (running here) are never touched. Returns the ids.
 */
export async function recoverExpired(deps: ExecutorDeps, mine: string[]): Promise<string[]> {
  const result = await deps.db.transaction().execute(async (trx) => {
    let q = trx
      .selectFrom('pipelines')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('status', '=', 'running'),
          eb.and([eb('status', '=', 'cancelled'), eb('lease_holder', 'is not', null)]),
        ]),
      )
      .where('lease_expires_at', '<', sql<Date>`now()`);
    if (mine.length > 0) q = q.where('id', 'not in', mine);
    const rows = await q.forUpdate().skipLocked().limit(100).execute();
    const failed: PipelineRow[] = [];
    for (const row of rows) {
      if (row.status === 'running') {
        const updated = await interruptPipeline(trx, row);
        if (updated) failed.push(updated);
      } else await releaseCancelled(trx, row.id);
    }
    return { ids: rows.map((r) => r.id), failed };
  });
  if (result.ids.length > 0) {
    deps.log.warn({ pipelines: result.ids }, 'recovered pipelines left running by a stopped instance');
    try {
      await deps.runner.cleanupOrphans(result.ids);
    } catch (err) {
      deps.log.error({ err }, 'cleaning up orphaned steps failed');
    }
    for (const row of result.failed) {
      const project = await deps.projects.get(row.project_id).catch(() => null);
      if (project) deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
    }
  }
  return result.ids;
}
