import type { Db, DbOrTx } from '../store/db.js';
import type { DeploymentAction, DeploymentResult, JsonObject } from '../store/schema.js';
import type { Refs } from './manifests.js';
import type { DeploymentRow } from './transitions.js';

/** What one apply produced: the rendered manifests and where they run. */
export interface Applied {
  manifests: string;
  opsSha: string | null;
  runtime: JsonObject;
}

/** A history entry a rollback can restore. */
export interface HistoryEntry {
  id: string;
  image_ref: string | null;
  artifact_id: string | null;
  pipeline_id: string | null;
  commit_sha: string | null;
  ops_sha: string | null;
  manifests: string | null;
  values_override: JsonObject;
  created_at: Date;
}

export interface HistoryInput {
  action: DeploymentAction;
  result: DeploymentResult;
  refs: Refs;
  applied: Applied | null;
  actor: string | null;
  message: string;
  started: number;
}

export function refsOf(e: Refs | HistoryEntry): Refs & { values_override: string } {
  return {
    image_ref: e.image_ref,
    artifact_id: e.artifact_id,
    pipeline_id: e.pipeline_id,
    commit_sha: e.commit_sha,
    values_override: JSON.stringify(e.values_override ?? {}),
  } as never;
}

/** Appends one history row; answers its id. */
export async function insertHistory(db: DbOrTx, row: DeploymentRow, h: HistoryInput): Promise<string> {
  const values =
    typeof h.refs.values_override === 'string'
      ? h.refs.values_override
      : JSON.stringify(h.refs.values_override ?? {});
  const inserted = await db
    .insertInto('deployment_history')
    .values({
      deployment_id: row.id,
      project_id: row.project_id,
      environment: row.environment,
      action: h.action,
      result: h.result,
      image_ref: h.refs.image_ref,
      artifact_id: h.refs.artifact_id,
      pipeline_id: h.refs.pipeline_id,
      commit_sha: h.refs.commit_sha,
      ops_sha: h.applied?.opsSha ?? null,
      actor_id: h.actor,
      message: h.message.slice(0, 2000),
      duration_ms: Date.now() - h.started,
      manifests: h.applied?.manifests ?? null,
      values_override: values,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return inserted.id;
}

/** The successful deploy/rollback to go back to: the chosen entry, or the newest one with other refs. */
export async function previousSuccess(
  db: Db,
  row: DeploymentRow,
  chosen: string | null,
): Promise<HistoryEntry | null> {
  let q = db
    .selectFrom('deployment_history')
    .selectAll()
    .where('deployment_id', '=', row.id)
    .where('result', '=', 'success')
    .where('action', 'in', ['deploy', 'rollback'])
    .where('manifests', 'is not', null);
  if (chosen) q = q.where('id', '=', chosen);
  else {
    const current = (row.runtime.history_id as string | undefined) ?? null;
    // What serves now is the newest success; the one before it is the rollback target.
    const serving = await db
      .selectFrom('deployment_history')
      .select(['id', 'created_at'])
      .where('deployment_id', '=', row.id)
      .where('result', '=', 'success')
      .where('action', 'in', ['deploy', 'rollback'])
      .$if(current !== null, (b) => b.where('id', '=', current!))
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (row.desired_status === 'rollback' && serving) {
      q = q.where((eb) =>
        eb.or([
          eb('created_at', '<', serving.created_at),
          eb.and([eb('created_at', '=', serving.created_at), eb('id', '<', serving.id)]),
        ]),
      );
      // Not the same version again.
      const s = await db
        .selectFrom('deployment_history')
        .selectAll()
        .where('id', '=', serving.id)
        .executeTakeFirstOrThrow();
      q = q.where((eb) =>
        eb.or([
          eb('artifact_id', 'is distinct from', s.artifact_id),
          eb('image_ref', 'is distinct from', s.image_ref),
          eb('commit_sha', 'is distinct from', s.commit_sha),
          eb('manifests', 'is distinct from', s.manifests),
        ]),
      );
    } else if (serving) q = q.where('id', '=', serving.id);
  }
  const entry = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return entry ?? null;
}
