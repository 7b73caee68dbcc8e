import type {
  ArtifactRow,
  PipelineRow,
  PipelineStatus,
  PipelineStepRow,
  PipelineStepStatus,
  PipelineTrigger,
  StepPublishSpec,
} from '../store/schema.js';

export {
  type PipelineStatus,
  type PipelineStepStatus,
  type PipelineTrigger,
  pipelineStatuses,
  pipelineStatusTransitions,
  pipelineStepStatuses,
  pipelineStepStatusTransitions,
  pipelineTriggers,
} from '../store/schema.js';

export const DEFINITION_FILE = '.platform.yaml';

/** Statuses a pipeline never leaves. */
export const FINISHED_PIPELINE: readonly PipelineStatus[] = ['success', 'failure', 'cancelled'];
export const FINISHED_STEP: readonly PipelineStepStatus[] = ['success', 'failure', 'skipped', 'cancelled'];

/** The error of pipelines that were running when their instance died (recovery fails them). */
export const INTERRUPTED_ERROR = 'interrupted: the platform stopped while it ran';

/** Names of variables given to an api trigger: upper-case shell names. */
export const VARIABLE_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Variables the platform injects into every step; api variables may not override them. */
export const INJECTED_VARIABLES = [
  'PLATFORM_PROJECT_ID',
  'PLATFORM_PROJECT_NAME',
  'PROJECT',
  'COMMIT_SHA',
  'COMMIT_REF',
  'COMMIT_BRANCH',
  'PIPELINE_ID',
  'STEP_NAME',
  'REGISTRY',
  'CI',
] as const;

export interface StepView {
  id: string;
  name: string;
  position: number;
  image: string | null;
  commands: string[];
  environment: Record<string, string>;
  depends_on: string[];
  allow_failure: boolean;
  timeout_seconds: number | null;
  publish: StepPublishSpec | null;
  status: PipelineStepStatus;
  exit_code: number | null;
  error: string | null;
  log_size: number | null;
  duration_ms: number | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface PipelineView {
  id: string;
  /** Per project (#42). */
  number: number;
  project_id: string;
  trigger: PipelineTrigger;
  git_ref: string;
  /** Branch or tag name without refs/heads/ or refs/tags/. */
  ref_name: string;
  commit_sha: string;
  commit_message: string;
  status: PipelineStatus;
  error: string | null;
  triggered_by: string | null;
  mr_id: string | null;
  retry_of: string | null;
  concurrency_group: string | null;
  variables: Record<string, string>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  steps?: StepView[];
}

export function shortRef(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

/** The branch of a ref, or null for tags and other refs. */
export function branchOf(ref: string): string | null {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null;
}

export function pipelineView(row: PipelineRow, steps?: PipelineStepRow[]): PipelineView {
  const started = row.started_at ? new Date(row.started_at).getTime() : null;
  const finished = row.finished_at ? new Date(row.finished_at).getTime() : null;
  return {
    id: row.id,
    number: row.number,
    project_id: row.project_id,
    trigger: row.trigger,
    git_ref: row.git_ref,
    ref_name: shortRef(row.git_ref),
    commit_sha: row.commit_sha,
    commit_message: row.commit_message,
    status: row.status,
    error: row.error,
    triggered_by: row.triggered_by,
    mr_id: row.mr_id,
    retry_of: row.retry_of,
    concurrency_group: row.concurrency_group,
    variables: row.variables ?? {},
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    duration_ms: started !== null && finished !== null ? Math.max(0, finished - started) : null,
    ...(steps ? { steps: steps.map(stepView) } : {}),
  };
}

export function stepView(row: PipelineStepRow): StepView {
  return {
    id: row.id,
    name: row.name,
    position: row.position,
    image: row.image,
    commands: row.commands,
    environment: row.environment ?? {},
    depends_on: row.depends_on,
    allow_failure: row.allow_failure,
    timeout_seconds: row.timeout_seconds,
    publish: row.publish,
    status: row.status,
    exit_code: row.exit_code,
    error: row.error,
    log_size: row.log_size === null ? null : Number(row.log_size),
    duration_ms: row.duration_ms,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}

export interface ArtifactView {
  id: string;
  pipeline_id: string;
  project_id: string;
  step_id: string | null;
  name: string;
  content_type: string;
  size_bytes: number;
  sha256: string | null;
  expires_at: Date | null;
  created_at: Date;
}

export function artifactView(row: ArtifactRow): ArtifactView {
  return {
    id: row.id,
    pipeline_id: row.pipeline_id,
    project_id: row.project_id,
    step_id: row.step_id,
    name: row.name,
    content_type: row.content_type,
    size_bytes: Number(row.size_bytes),
    sha256: row.sha256,
    expires_at: row.expires_at,
    created_at: row.created_at,
  };
}

/** Pub/sub channels (shared on Valkey, so any instance can serve a step's live log). */
export const channels = {
  /** Live output of one step: {type:'chunk', offset, data} and finally {type:'end', offset, status}. */
  stepLog: (stepId: string) => `pipeline.log.${stepId}`,
  /** Backlog requests: an SSE stream on any instance asks the executing instance for bytes so far. */
  logReplay: 'pipeline.log-replay',
  logReplayAnswer: (requestId: string) => `pipeline.log-replay.${requestId}`,
  /** Cancel requests for running pipelines: {pipelineId}. */
  cancel: 'pipeline.cancel',
  /** Work was queued: every instance claims at once instead of at its next poll. */
  wake: 'pipeline.wake',
} as const;

export type StepLogMessage =
  | { type: 'chunk'; offset: number; data: string }
  | { type: 'end'; offset: number; status: PipelineStepStatus };
