import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { PipelineStepRow } from '../store/schema.js';
import { type PackedArtifact, packArtifact } from './artifacts.js';
import type { ArtifactDefinition } from './definition-types.js';
import { expandVariables } from './events.js';
import type { ExecutorDeps, PendingArtifact, RunContext } from './run-context.js';

const ENVIRONMENT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Checks and stages what a successful `publish` step hands to the deployer; a problem fails the step. */
export async function preparePublication(
  deps: Pick<ExecutorDeps, 'objects'>,
  ctx: RunContext,
  step: PipelineStepRow,
  env: Record<string, string>,
): Promise<string | null> {
  const spec = step.publish!;
  if (!ENVIRONMENT_NAME.test(spec.environment))
    return `environment "${spec.environment}" must be a DNS label (a-z, 0-9, "-")`;
  if (spec.image) {
    ctx.publications.push({
      stepId: step.id,
      environment: spec.environment,
      imageRef: expandVariables(spec.image, env),
      artifactName: null,
    });
    return null;
  }
  if (!spec.artifact) return 'neither artifact nor image given';
  const name = uniqueArtifactName(ctx, `publish-${step.name}`);
  const staged = await upload(deps, ctx, name, spec.artifact, step.id, null);
  if (typeof staged === 'string') return staged;
  ctx.publications.push({
    stepId: step.id,
    environment: spec.environment,
    imageRef: null,
    artifactName: name,
  });
  return null;
}

/** Uploads the definition's `artifacts` after the steps; a missing path is logged, not an error. */
export async function collectArtifacts(
  deps: Pick<ExecutorDeps, 'objects' | 'log' | 'options'>,
  ctx: RunContext,
  defs: ArtifactDefinition[],
): Promise<void> {
  for (const def of defs) {
    const expires = def.expires_seconds ?? deps.options.artifactExpirySeconds;
    const name = uniqueArtifactName(ctx, def.name);
    const staged = await upload(deps, ctx, name, def.path, null, new Date(Date.now() + expires * 1000));
    if (typeof staged === 'string') deps.log.info({ pipelineId: ctx.row.id, artifact: def.name }, staged);
  }
}

function uniqueArtifactName(ctx: RunContext, base: string): string {
  let name = base;
  for (let i = 2; ctx.artifactNames.has(name); i++) name = `${base}-${i}`;
  ctx.artifactNames.add(name);
  return name;
}

/** Uploads a workspace file (or a directory as tar.gz); returns a problem text when there is nothing to upload. */
async function upload(
  deps: Pick<ExecutorDeps, 'objects'>,
  ctx: RunContext,
  name: string,
  relPath: string,
  stepId: string | null,
  expiresAt: Date | null,
): Promise<PendingArtifact | string> {
  let packed: PackedArtifact | string;
  try {
    packed = await packArtifact(ctx.workspace.dir, relPath, ctx.logDir);
  } catch (err) {
    return `artifact "${relPath}": ${(err as Error).message}`;
  }
  if (typeof packed === 'string') return packed;
  try {
    const key = `artifacts/${ctx.row.id}/${name}`;
    const info = await stat(packed.file);
    await deps.objects.put(key, createReadStream(packed.file), {
      contentType: packed.contentType,
      contentLength: info.size,
    });
    const artifact: PendingArtifact = {
      name,
      stepId,
      key,
      size: info.size,
      sha256: packed.sha256,
      contentType: packed.contentType,
      expiresAt,
    };
    ctx.artifacts.push(artifact);
    return artifact;
  } finally {
    await packed.cleanup();
  }
}
