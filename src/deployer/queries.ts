import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import { resolvePreview, upsertPreview } from './previews.js';

/** What a successful `publish` step hands to the deployer: an image or a stored artifact for an environment. */
export interface Publication {
  projectId: string;
  environment: string;
  imageRef: string | null;
  artifactId: string | null;
  pipelineId: string;
  commitSha: string;
  deployedBy: string | null;
}

export interface RecordedDeployment {
  id: string;
  environment: string;
  current_status: string;
}

/**
 * Records what should run in an environment (one row per project and environment): a new row, or
 * the existing one pointed at the new image/artifact with its generation bumped so the deployer
 * rolls it out. Called in the transaction that finishes the publishing pipeline.
 */
export async function recordPublication(trx: DbOrTx, p: Publication): Promise<RecordedDeployment> {
  // A publish to `preview` is this branch's (or merge request's) preview-<slug> environment.
  const { environment, preview } = await resolvePreview(trx, p);
  const recorded = await trx
    .insertInto('deployments')
    .values({
      project_id: p.projectId,
      environment,
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
      oc.columns(['project_id', 'environment']).doUpdateSet((eb) => ({
        image_ref: eb.ref('excluded.image_ref'),
        artifact_id: eb.ref('excluded.artifact_id'),
        pipeline_id: eb.ref('excluded.pipeline_id'),
        commit_sha: eb.ref('excluded.commit_sha'),
        desired_status: 'active',
        generation: eb(eb.ref('deployments.generation'), '+', 1),
        deployed_by: eb.ref('excluded.deployed_by'),
        requested_by: eb.ref('excluded.requested_by'),
        deployed_at: eb.ref('excluded.deployed_at'),
      })),
    )
    .returning(['id', 'environment', 'current_status'])
    .executeTakeFirstOrThrow();
  if (preview) await upsertPreview(trx, { projectId: p.projectId, environment, ...preview });
  return recorded;
}
