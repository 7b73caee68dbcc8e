import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, DbOrTx } from '../store/db.js';
import { previewEnvironmentStatusTransitions, transitionSources } from '../store/schema.js';
import { requestStop } from './transitions.js';

/** The environment a publish names to ask for a preview of its branch or merge request. */
export const PREVIEW_REQUEST = 'preview';
/** Previews are torn down this long after their last publication unless the MR ends first. */
export const PREVIEW_TTL_SECONDS = 7 * 24 * 3600;

const TEARDOWN = transitionSources(
  previewEnvironmentStatusTransitions,
  'preview teardown',
  ['active', 'tearing_down'],
  'torn_down',
);
const REVIVE = transitionSources(
  previewEnvironmentStatusTransitions,
  'preview revive',
  ['torn_down', 'tearing_down'],
  'active',
);

/**
 * `preview-<slug>` for a branch: lower-case, every run of other characters one `-`, trimmed; a
 * branch too long for a DNS label (63 characters in all) keeps its first 48 characters and gets 6
 * hex digits of its hash, so two long branches do not collide.
 */
export function previewEnvironment(branch: string): string {
  const name = branch.replace(/^refs\/heads\//, '');
  let slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (!slug) slug = 'branch';
  if (slug.length > 55) {
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 6);
    slug = `${slug.slice(0, 48).replace(/-+$/, '')}-${hash}`;
  }
  return `preview-${slug}`;
}

/**
 * In the publishing transaction: a publish to `preview` becomes `preview-<slug>` of the pipeline's
 * branch (its merge request's source branch for an MR pipeline), with its preview row (re)activated
 * and its TTL renewed. Other environments are returned unchanged.
 */
export async function resolvePreview(
  trx: DbOrTx,
  p: { projectId: string; environment: string; pipelineId: string },
): Promise<{ environment: string; preview: { branch: string; mrId: string | null } | null }> {
  if (p.environment !== PREVIEW_REQUEST) return { environment: p.environment, preview: null };
  const pipeline = await trx
    .selectFrom('pipelines as p')
    .leftJoin('merge_requests as m', 'm.id', 'p.mr_id')
    .select(['p.git_ref', 'p.mr_id', 'm.source_branch'])
    .where('p.id', '=', p.pipelineId)
    .executeTakeFirstOrThrow();
  const branch = (pipeline.source_branch ?? pipeline.git_ref).replace(/^refs\/heads\//, '');
  return { environment: previewEnvironment(branch), preview: { branch, mrId: pipeline.mr_id } };
}

export async function upsertPreview(
  trx: DbOrTx,
  p: { projectId: string; environment: string; branch: string; mrId: string | null },
): Promise<void> {
  await trx
    .insertInto('preview_environments')
    .values({
      project_id: p.projectId,
      environment: p.environment,
      branch: p.branch,
      mr_id: p.mrId,
      expires_at: sql<Date>`now() + make_interval(secs => ${PREVIEW_TTL_SECONDS})`,
    })
    .onConflict((oc) =>
      oc.columns(['project_id', 'environment']).doUpdateSet({
        mr_id: sql`coalesce(excluded.mr_id, preview_environments.mr_id)`,
        expires_at: sql<Date>`excluded.expires_at`,
        // Only a preview that was torn down comes back (the guarded revive).
        status: sql`case when preview_environments.status in (${sql.join(REVIVE)}) then 'active' else preview_environments.status end`,
        torn_down_at: sql`case when preview_environments.status in (${sql.join(REVIVE)}) then null else preview_environments.torn_down_at end`,
      }),
    )
    .execute();
}

/**
 * Tears previews down (their MR merged or closed, or their TTL passed): the preview row → torn_down
 * and its deployment asked to stop (the reconciler stops it and records `stop` by the system).
 * Answers how many were torn down.
 */
export async function tearDownPreviews(db: Db, which: { mrId: string } | { expired: true }): Promise<number> {
  return db.transaction().execute(async (trx) => {
    let q = trx
      .updateTable('preview_environments')
      .set({ status: 'torn_down', torn_down_at: sql<Date>`now()` })
      .where('status', 'in', TEARDOWN);
    q = 'mrId' in which ? q.where('mr_id', '=', which.mrId) : q.where('expires_at', '<', sql<Date>`now()`);
    const gone = await q.returning(['project_id', 'environment']).execute();
    for (const g of gone) await requestStop(trx, g.project_id, g.environment);
    return gone.length;
  });
}
