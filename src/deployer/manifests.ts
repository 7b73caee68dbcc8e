import { parseAllDocuments } from 'yaml';
import type { JsonObject } from '../store/schema.js';
import {
  mergeValues,
  parseValues,
  RenderError,
  type RenderedDocument,
  renderAll,
  toYamlStream,
} from './render.js';
import { type ManifestSource, readManifestDir, SourceError } from './sources.js';
import type { DeploymentRow } from './transitions.js';

export interface ProjectInfo {
  id: string;
  name: string;
  owner_name: string;
  owner_id: string;
}

/** What rendering needs: the project (name, repository) and a synced ops repo. */
export interface ManifestDeps {
  project(id: string): Promise<ProjectInfo & { repoDir: string }>;
  /** Syncs the ops repo and answers its mirror and commit. */
  opsRepo(id: string): Promise<{ gitDir: string; sha: string; path: string }>;
}

/** The refs of a version: what a deployment row and a history entry both carry. */
export type Refs = Pick<
  DeploymentRow,
  'image_ref' | 'artifact_id' | 'pipeline_id' | 'commit_sha' | 'values_override'
>;

/** A deploy failed; `healthFailure`: the new version never got healthy (rollout timeout, health path). */
export class DeployFailure extends Error {
  constructor(
    message: string,
    readonly healthFailure: boolean,
  ) {
    super(message);
  }
}

/**
 * The manifests a deployment would apply at its refs: the ops repo (synced) at `apps/<project>/`,
 * or the project's own `deploy/` at the deployed commit; values merged; templates rendered.
 */
export async function renderDeployment(
  d: ManifestDeps,
  row: Pick<DeploymentRow, 'project_id' | 'environment' | 'ops_repo_id' | 'commit_sha'>,
  refs: Refs,
): Promise<{ manifests: string; opsSha: string }> {
  const project = await d.project(row.project_id);
  let source: ManifestSource;
  try {
    if (row.ops_repo_id) {
      const ops = await d.opsRepo(row.ops_repo_id);
      const base = ops.path.replace(/^\/+|\/+$/g, '');
      source = await readManifestDir(
        ops.gitDir,
        ops.sha,
        `${base ? `${base}/` : ''}apps/${project.name}`,
        row.environment,
        'ops_repo',
      );
    } else {
      if (!row.commit_sha) throw new SourceError('no ops repo and no commit to read deploy/ from');
      source = await readManifestDir(project.repoDir, row.commit_sha, 'deploy', row.environment, 'project');
    }
  } catch (err) {
    throw new DeployFailure(err instanceof Error ? err.message : String(err), false);
  }
  const docs = renderSource(source, row, refs, project.name);
  return { manifests: toYamlStream(docs), opsSha: source.sha };
}

/** sync → values → render, for a deployment at its refs. */
export function renderSource(
  source: ManifestSource,
  row: Pick<DeploymentRow, 'environment'>,
  refs: Refs,
  projectName: string,
): RenderedDocument[] {
  try {
    const values = mergeValues(
      source.values ? parseValues(source.values) : {},
      source.environmentValues ? parseValues(source.environmentValues) : {},
      (typeof refs.values_override === 'string'
        ? JSON.parse(refs.values_override)
        : refs.values_override) as JsonObject,
    );
    return renderAll(source.templates, {
      image_ref: refs.image_ref,
      artifact: refs.artifact_id,
      environment: row.environment,
      project: projectName,
      values,
    });
  } catch (err) {
    if (err instanceof RenderError) throw new DeployFailure(`template error: ${err.message}`, false);
    throw err;
  }
}

export function parseStream(text: string): JsonObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter((o): o is JsonObject => o !== null && typeof o === 'object' && !Array.isArray(o));
}
