import type { DbOrTx } from '../store/db.js';
import { resolvePreview, upsertPreview } from './previews.js';
import { type PublishedRefs, publishDesired } from './transitions.js';

/** What a successful `publish` step hands to the deployer: an image or a stored artifact for an environment. */
export type Publication = PublishedRefs;

export interface RecordedDeployment {
  id: string;
  project_id: string;
  environment: string;
  current_status: string;
  deployed_by: string | null;
}

/**
 * Records what should run in an environment (one row per project and environment) through the
 * deployer's `publish` transition. Called in the transaction that finishes the publishing pipeline;
 * after its commit the pipeline hands the result to `announcePublication` (the deployer's event).
 */
export async function recordPublication(trx: DbOrTx, p: Publication): Promise<RecordedDeployment> {
  // A publish to `preview` is this branch's (or merge request's) preview-<slug> environment.
  const { environment, preview } = await resolvePreview(trx, p);
  const recorded = await publishDesired(trx, { ...p, environment });
  if (preview) await upsertPreview(trx, { projectId: p.projectId, environment, ...preview });
  return recorded;
}
