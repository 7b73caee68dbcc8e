import type { ProjectRow } from '../projects/index.js';
import type { PipelineRow } from '../store/schema.js';
import { shortRef } from './types.js';

/** A pipeline reached a final status; emitted after the commit that finished it. */
export interface PipelineFinishedEvent {
  projectId: string;
  pipelineId: string;
  /** The pipeline's final status, as in the API. */
  status: 'success' | 'failure' | 'cancelled';
  ref: string;
  /** Who pushed or started it; null for scheduled runs. */
  triggeredBy: string | null;
  ownerId: string;
}

declare module '../core/events.js' {
  interface DomainEvents {
    'pipeline.finished': PipelineFinishedEvent;
  }
}

export function toFinishedEvent(
  row: Pick<PipelineRow, 'id' | 'project_id' | 'status' | 'git_ref' | 'triggered_by'>,
  project: Pick<ProjectRow, 'owner_id'>,
): PipelineFinishedEvent {
  return {
    projectId: row.project_id,
    pipelineId: row.id,
    // Only finished pipelines get here; anything else would be a bug reported as a failure.
    status: row.status === 'success' || row.status === 'cancelled' ? row.status : 'failure',
    ref: shortRef(row.git_ref),
    triggeredBy: row.triggered_by,
    ownerId: project.owner_id,
  };
}

/** `$NAME` and `${NAME}` replaced by the variable's value (unknown names stay as written). */
export function expandVariables(text: string, vars: Record<string, string>): string {
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, a, b) => {
    const name = (a ?? b) as string;
    return Object.hasOwn(vars, name) ? vars[name]! : whole;
  });
}
