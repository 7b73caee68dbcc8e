import { SecretResolutionError } from '../secrets/index.js';
import type { PipelineRow, PipelineStepRow } from '../store/schema.js';
import type { PipelineDefinition } from './definition-types.js';
import type { ExecutorDeps, RunContext } from './run-context.js';
import { branchOf } from './types.js';

const PLACEHOLDER = /\$\{\{ secrets\.([A-Za-z_][A-Za-z0-9_]{0,254}) \}\}/g;

/**
 * A step's environment: the api variables, the definition's `environment` with its
 * `${{ secrets.NAME }}` placeholders resolved, and the platform's facts (which win). Returns the
 * secret values too, for masking the log. Throws SecretResolutionError naming every missing secret.
 */
export async function stepEnvironment(
  deps: Pick<ExecutorDeps, 'secrets' | 'options'>,
  ctx: Pick<RunContext, 'row' | 'project'>,
  step: PipelineStepRow,
): Promise<{ env: Record<string, string>; secrets: string[] }> {
  const { row, project } = ctx;
  const names = new Set<string>();
  for (const value of Object.values(step.environment ?? {}))
    for (const m of value.matchAll(PLACEHOLDER)) names.add(m[1]!);
  const values = new Map<string, string>();
  const missing: string[] = [];
  for (const name of names) {
    try {
      values.set(
        name,
        await deps.secrets.resolve(project.id, name, 'pipeline', { kind: 'pipeline', id: row.id }),
      );
    } catch (err) {
      if (err instanceof SecretResolutionError) missing.push(...err.missing);
      else throw err;
    }
  }
  if (missing.length > 0) throw new SecretResolutionError(missing, 'pipeline');
  const resolved: Record<string, string> = {};
  for (const [key, value] of Object.entries(step.environment ?? {}))
    resolved[key] = value.replace(PLACEHOLDER, (_m, n: string) => values.get(n)!);
  const env: Record<string, string> = {
    ...(row.variables ?? {}),
    ...resolved,
    ...injectedVariables(ctx, step.name, deps.options.registry),
  };
  return { env, secrets: [...values.values()] };
}

/** The variables the platform injects into every step (INJECTED_VARIABLES). */
function injectedVariables(
  ctx: Pick<RunContext, 'row' | 'project'>,
  stepName: string,
  registry: string,
): Record<string, string> {
  const { row, project } = ctx;
  return {
    PLATFORM_PROJECT_ID: project.id,
    PLATFORM_PROJECT_NAME: project.name,
    PROJECT: `${project.owner_name}/${project.name}`,
    COMMIT_SHA: row.commit_sha,
    COMMIT_REF: row.git_ref,
    COMMIT_BRANCH: branchOf(row.git_ref) ?? '',
    PIPELINE_ID: row.id,
    STEP_NAME: stepName,
    REGISTRY: registry,
    CI: 'true',
  };
}

/** The step's `network` from the stored definition (rows written before it existed: host). */
export function stepNetwork(row: PipelineRow, stepName: string): 'host' | 'none' {
  const definition = row.definition as unknown as PipelineDefinition | null;
  return definition?.steps.find((s) => s.name === stepName)?.network === 'none' ? 'none' : 'host';
}
