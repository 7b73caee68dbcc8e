/**
 * Kysely table interfaces for the whole schema (src/store/migrations/*.sql), plus the value sets
 * of every enum column and the allowed-transitions table of every status column.
 *
 * Column types follow what the drivers return:
 * - timestamptz → Date (insert/update accept Date or ISO string);
 * - jsonb → the parsed value on select, a JSON *string* on insert/update (JSON.stringify first);
 * - text[] / uuid[] → string[];
 * - bigint → number: db.ts must map int8 to number for `pg` (PGlite already does); the values
 *   stored (sizes, counts, tokens) stay far below 2^53;
 * - bytea → Buffer: PGlite returns a Uint8Array, so db.ts must convert (Buffer.from) for it.
 *
 * Keep this file in step with the migrations: names are snake_case, exactly as in SQL.
 */
import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

// ---------------------------------------------------------------------------------------------
// Column helpers

/** timestamptz NOT NULL with a default (created_at, updated_at, ...): optional on insert. */
export type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** timestamptz NOT NULL without a default: required on insert. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** timestamptz NULL. */
export type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** jsonb NOT NULL with a default: parsed on select, a JSON string on insert (optional) and update. */
export type Json<T = JsonValue> = ColumnType<T, string | undefined, string>;
/** jsonb NOT NULL without a default: a JSON string is required on insert. */
export type RequiredJson<T = JsonValue> = ColumnType<T, string, string>;
/** jsonb NULL. */
export type NullableJson<T = JsonValue> = ColumnType<T | null, string | null | undefined, string | null>;

/** bytea NOT NULL. */
export type Bytea = ColumnType<Buffer, Buffer, Buffer>;
/** bytea NULL. */
export type NullableBytea = ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;

/**
 * Allowed changes of a status column: `from → to[]`. A change that is not listed is an error
 * (conventions: status fields are string unions with one transition table each). Setting a
 * column to the value it already has is not a transition and is not listed.
 */
export type StatusTransitions<S extends string> = Readonly<Record<S, readonly S[]>>;

/**
 * The source statuses of a named transition, checked against the column's table when the module
 * that declares it loads: a `transitions.ts` cannot write a change the table does not allow.
 */
export function transitionSources<S extends string>(
  table: StatusTransitions<S>,
  what: string,
  from: readonly S[],
  to: S | readonly S[],
): readonly S[] {
  const targets: readonly S[] = typeof to === 'string' ? [to] : to;
  for (const f of from)
    for (const t of targets)
      if (!table[f].includes(t)) throw new Error(`${what}: ${f} → ${t} is not an allowed transition`);
  return from;
}

// ---------------------------------------------------------------------------------------------
// Foundation

export interface SchedulerLeasesTable {
  name: string;
  holder: string;
  expires_at: Timestamp;
}

// ---------------------------------------------------------------------------------------------
// Identity

export const userTypes = ['human', 'agent', 'service_account'] as const;
export type UserType = (typeof userTypes)[number];

export interface UsersTable {
  id: Generated<string>;
  name: string;
  email: string;
  display_name: string | null;
  password_hash: string | null;
  user_type: Generated<UserType>;
  is_active: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface PermissionsTable {
  name: string;
  description: Generated<string>;
}

export interface RolesTable {
  id: Generated<string>;
  name: string;
  description: Generated<string>;
  is_system: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface RolePermissionsTable {
  role_id: string;
  permission: string;
}

export interface UserRolesTable {
  id: Generated<string>;
  user_id: string;
  role_id: string;
  /** NULL = bound globally. */
  project_id: string | null;
  created_at: DefaultTimestamp;
}

export interface DelegationsTable {
  id: Generated<string>;
  delegator_id: string;
  delegate_id: string;
  permission: string;
  project_id: string | null;
  expires_at: NullableTimestamp;
  reason: Generated<string>;
  revoked_at: NullableTimestamp;
  created_at: DefaultTimestamp;
}

export interface AuthSessionsTable {
  id: Generated<string>;
  user_id: string;
  /** SHA-256 (hex) of the cookie token. */
  token_hash: string;
  ip: string | null;
  user_agent: string | null;
  expires_at: Timestamp;
  last_seen_at: DefaultTimestamp;
  created_at: DefaultTimestamp;
}

export interface ApiTokensTable {
  id: Generated<string>;
  user_id: string;
  name: string;
  token_hash: string;
  token_prefix: string;
  /** NULL = no restriction beyond the owner's permissions. */
  scopes: string[] | null;
  project_id: string | null;
  last_used_at: NullableTimestamp;
  expires_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  created_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Projects, git metadata, issues, merge requests, webhooks

export const projectVisibilities = ['private', 'internal', 'public'] as const;
export type ProjectVisibility = (typeof projectVisibilities)[number];

export interface ProjectsTable {
  id: Generated<string>;
  owner_id: string;
  name: string;
  display_name: string | null;
  description: Generated<string>;
  visibility: Generated<ProjectVisibility>;
  default_branch: Generated<string>;
  repo_path: string;
  /** false = archived (soft-deleted). */
  is_active: Generated<boolean>;
  next_issue_number: Generated<number>;
  next_mr_number: Generated<number>;
  next_pipeline_number: Generated<number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ProjectRedirectsTable {
  id: Generated<string>;
  owner_id: string;
  name: string;
  project_id: string;
  created_at: DefaultTimestamp;
}

export interface ProtectedBranchesTable {
  id: Generated<string>;
  project_id: string;
  /** Glob pattern, e.g. `main`, `release/*`. */
  pattern: string;
  allow_force_push: Generated<boolean>;
  allow_deletion: Generated<boolean>;
  required_approvals: Generated<number>;
  require_pipeline: Generated<boolean>;
  /** Users who may push directly although the rule requires approvals or a pipeline. */
  allow_direct_push: Generated<string[]>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface LfsObjectsTable {
  id: Generated<string>;
  project_id: string;
  oid: string;
  size: number;
  verified_at: NullableTimestamp;
  created_at: DefaultTimestamp;
}

export interface LfsLocksTable {
  id: Generated<string>;
  project_id: string;
  path: string;
  ref_name: string | null;
  owner_id: string;
  locked_at: DefaultTimestamp;
}

export const issueStatuses = ['open', 'closed'] as const;
export type IssueStatus = (typeof issueStatuses)[number];
export const issueStatusTransitions: StatusTransitions<IssueStatus> = {
  open: ['closed'],
  closed: ['open'],
};

export interface IssuesTable {
  id: Generated<string>;
  project_id: string;
  number: number;
  title: string;
  body: Generated<string>;
  status: Generated<IssueStatus>;
  labels: Generated<string[]>;
  author_id: string;
  assignee_id: string | null;
  closed_at: NullableTimestamp;
  closed_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const mergeRequestStatuses = ['open', 'merged', 'closed'] as const;
export type MergeRequestStatus = (typeof mergeRequestStatuses)[number];
/** closed → merged: a merge that moved the target branch while another instance closed the MR. */
export const mergeRequestStatusTransitions: StatusTransitions<MergeRequestStatus> = {
  open: ['merged', 'closed'],
  closed: ['open', 'merged'],
  merged: [],
};

export const mergeStrategies = ['merge', 'squash', 'fast_forward'] as const;
export type MergeStrategy = (typeof mergeStrategies)[number];

export interface MergeRequestsTable {
  id: Generated<string>;
  project_id: string;
  number: number;
  title: string;
  body: Generated<string>;
  source_branch: string;
  target_branch: string;
  status: Generated<MergeRequestStatus>;
  author_id: string;
  head_sha: string | null;
  base_sha: string | null;
  merge_strategy: MergeStrategy | null;
  merge_sha: string | null;
  merged_by: string | null;
  merged_at: NullableTimestamp;
  closed_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface MrMergeIntentsTable {
  mr_id: string;
  project_id: string;
  target_branch: string;
  target_sha: string;
  new_sha: string;
  head_sha: string;
  strategy: MergeStrategy;
  merged_by: string;
  actor: RequiredJson<{ id: string | null; name: string; ip: string | null }>;
  merged_by_name: string;
  created_at: DefaultTimestamp;
}

export interface MrReviewersTable {
  mr_id: string;
  user_id: string;
  requested_by: string | null;
  created_at: DefaultTimestamp;
}

export const mrReviewVerdicts = ['approve', 'request_changes', 'comment'] as const;
export type MrReviewVerdict = (typeof mrReviewVerdicts)[number];

export interface MrReviewsTable {
  id: Generated<string>;
  mr_id: string;
  reviewer_id: string;
  verdict: MrReviewVerdict;
  body: Generated<string>;
  commit_sha: string | null;
  created_at: DefaultTimestamp;
}

export interface CommentsTable {
  id: Generated<string>;
  project_id: string;
  /** Exactly one of issue_id / mr_id is set. */
  issue_id: string | null;
  mr_id: string | null;
  author_id: string;
  body: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const webhookEvents = ['push', 'mr', 'issue', 'pipeline', 'deploy', 'session', 'alert'] as const;
export type WebhookEvent = (typeof webhookEvents)[number];

export interface WebhooksTable {
  id: Generated<string>;
  project_id: string;
  url: string;
  events: Generated<WebhookEvent[]>;
  /** HMAC secret sealed with the master key (same format as secrets.ciphertext); NULL = unsigned. */
  secret_ciphertext: NullableBytea;
  is_active: Generated<boolean>;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const webhookDeliveryStatuses = ['pending', 'success', 'failure'] as const;
export type WebhookDeliveryStatus = (typeof webhookDeliveryStatuses)[number];
/** Each row is one attempt; a retry is a new row (attempt + 1) with the same delivery_id. */
export const webhookDeliveryStatusTransitions: StatusTransitions<WebhookDeliveryStatus> = {
  pending: ['success', 'failure'],
  success: [],
  failure: [],
};

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  webhook_id: string;
  /** Sent as X-Platform-Delivery; shared by all attempts of one delivery. */
  delivery_id: string;
  event: string;
  payload: RequiredJson;
  attempt: Generated<number>;
  status: Generated<WebhookDeliveryStatus>;
  status_code: number | null;
  duration_ms: number | null;
  error: string | null;
  next_attempt_at: DefaultTimestamp;
  finished_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Agents

export const agentSessionStatuses = ['pending', 'running', 'completed', 'failed', 'stopped'] as const;
export type AgentSessionStatus = (typeof agentSessionStatuses)[number];
export const agentSessionStatusTransitions: StatusTransitions<AgentSessionStatus> = {
  pending: ['running', 'failed', 'stopped'],
  running: ['completed', 'failed', 'stopped'],
  completed: [],
  failed: [],
  stopped: [],
};

export const runnerKinds = ['local', 'kubernetes'] as const;
export type RunnerKind = (typeof runnerKinds)[number];

export interface AgentSessionsTable {
  id: Generated<string>;
  project_id: string;
  user_id: string;
  agent_user_id: string | null;
  api_token_id: string | null;
  prompt: string;
  status: Generated<AgentSessionStatus>;
  provider: Generated<string>;
  provider_config: Json<JsonObject>;
  branch: string | null;
  permissions: Generated<string[]>;
  runner: RunnerKind | null;
  runner_ref: string | null;
  lease_holder: string | null;
  lease_expires_at: NullableTimestamp;
  next_message_seq: Generated<number>;
  exit_code: number | null;
  error: string | null;
  input_tokens: Generated<number>;
  output_tokens: Generated<number>;
  cache_read_tokens: Generated<number>;
  cache_write_tokens: Generated<number>;
  cost_usd: Generated<number>;
  deadline_at: NullableTimestamp;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
  limits: Json<JsonObject>;
  stop_reason: AgentStopReason | null;
  num_turns: Generated<number>;
  base_sha: string | null;
  issue_number: number | null;
  merge_request_number: number | null;
}

/** Why a session was stopped (`status = 'stopped'`): by a user, or a limit the platform enforces. */
export const agentStopReasons = [
  'user',
  'cost_limit',
  'token_limit',
  'turn_limit',
  'wall_clock',
  'daily_budget',
  'access_lost',
] as const;
export type AgentStopReason = (typeof agentStopReasons)[number];

export interface AgentSettingsTable {
  id: Generated<boolean>;
  max_running_total: Generated<number>;
  max_running_per_project: Generated<number>;
  sessions_per_user_per_hour: Generated<number>;
  timeout_seconds: Generated<number>;
  claude_command: Generated<string>;
  image: Generated<string>;
  providers: Json<JsonObject>;
  updated_at: DefaultTimestamp;
}

export interface AgentProjectSettingsTable {
  project_id: string;
  max_running: number | null;
  daily_cost_usd: number | null;
  updated_at: DefaultTimestamp;
}

export const agentMessageRoles = ['user', 'assistant', 'system', 'tool'] as const;
export type AgentMessageRole = (typeof agentMessageRoles)[number];

export const agentMessageKinds = [
  'init',
  'text',
  'thinking',
  'tool_call',
  'tool_result',
  'milestone',
  'error',
  'usage',
  'completed',
] as const;
export type AgentMessageKind = (typeof agentMessageKinds)[number];

export interface AgentMessagesTable {
  id: Generated<string>;
  session_id: string;
  seq: number;
  role: AgentMessageRole;
  kind: Generated<AgentMessageKind>;
  content: Generated<string>;
  metadata: Json<JsonObject>;
  created_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Build

export const pipelineTriggers = ['push', 'api', 'schedule', 'mr'] as const;
export type PipelineTrigger = (typeof pipelineTriggers)[number];

export const pipelineStatuses = ['pending', 'running', 'success', 'failure', 'cancelled'] as const;
export type PipelineStatus = (typeof pipelineStatuses)[number];
/** running → pending: allowed for a requeue; recovery today fails interrupted pipelines instead (see the pipeline executor). */
export const pipelineStatusTransitions: StatusTransitions<PipelineStatus> = {
  pending: ['running', 'failure', 'cancelled'],
  running: ['success', 'failure', 'cancelled', 'pending'],
  success: [],
  failure: [],
  cancelled: [],
};

export interface PipelinesTable {
  id: Generated<string>;
  project_id: string;
  /** Per project, from projects.next_pipeline_number (allocateNumber). */
  number: number;
  trigger: PipelineTrigger;
  git_ref: string;
  commit_sha: string;
  commit_message: Generated<string>;
  status: Generated<PipelineStatus>;
  triggered_by: string | null;
  mr_id: string | null;
  retry_of: string | null;
  concurrency_group: string | null;
  error: string | null;
  variables: Json<Record<string, string>>;
  definition: NullableJson;
  lease_holder: string | null;
  lease_expires_at: NullableTimestamp;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const pipelineStepStatuses = [
  'pending',
  'running',
  'success',
  'failure',
  'skipped',
  'cancelled',
] as const;
export type PipelineStepStatus = (typeof pipelineStepStatuses)[number];
export const pipelineStepStatusTransitions: StatusTransitions<PipelineStepStatus> = {
  pending: ['running', 'skipped', 'cancelled', 'failure'],
  running: ['success', 'failure', 'cancelled', 'pending'],
  success: [],
  failure: [],
  skipped: [],
  cancelled: [],
};

/** Step-level `publish` from .platform.yaml. */
export interface StepPublishSpec {
  artifact?: string;
  image?: string;
  environment: string;
}

export interface PipelineStepsTable {
  id: Generated<string>;
  pipeline_id: string;
  name: string;
  position: number;
  image: string | null;
  commands: Generated<string[]>;
  environment: Json<Record<string, string>>;
  depends_on: Generated<string[]>;
  allow_failure: Generated<boolean>;
  timeout_seconds: number | null;
  publish: NullableJson<StepPublishSpec>;
  status: Generated<PipelineStepStatus>;
  exit_code: number | null;
  error: string | null;
  log_key: string | null;
  log_size: number | null;
  duration_ms: number | null;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ArtifactsTable {
  id: Generated<string>;
  pipeline_id: string;
  project_id: string;
  step_id: string | null;
  name: string;
  object_key: string;
  content_type: Generated<string>;
  size_bytes: Generated<number>;
  sha256: string | null;
  expires_at: NullableTimestamp;
  created_at: DefaultTimestamp;
}

export interface PipelineSchedulesTable {
  id: Generated<string>;
  project_id: string;
  git_ref: string;
  cron: string;
  is_active: Generated<boolean>;
  next_run_at: Timestamp;
  last_run_at: NullableTimestamp;
  last_pipeline_id: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Deploy

export const opsRepoSyncStatuses = ['success', 'failure'] as const;
export type OpsRepoSyncStatus = (typeof opsRepoSyncStatuses)[number];
/** Outcome of the last sync; NULL before the first one. */
export const opsRepoSyncStatusTransitions: StatusTransitions<OpsRepoSyncStatus> = {
  success: ['failure'],
  failure: ['success'],
};

export interface OpsReposTable {
  id: Generated<string>;
  name: string;
  repo_url: string;
  project_id: string | null;
  branch: Generated<string>;
  path: Generated<string>;
  credentials_secret: string | null;
  sync_interval_seconds: Generated<number>;
  last_sync_status: OpsRepoSyncStatus | null;
  last_synced_at: NullableTimestamp;
  last_sync_sha: string | null;
  last_sync_error: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const deploymentDesiredStatuses = ['active', 'stopped', 'rollback'] as const;
export type DeploymentDesiredStatus = (typeof deploymentDesiredStatuses)[number];
/** rollback → active is the reconciler finishing a rollback (with the restored refs). */
export const deploymentDesiredStatusTransitions: StatusTransitions<DeploymentDesiredStatus> = {
  active: ['stopped', 'rollback'],
  stopped: ['active', 'rollback'],
  rollback: ['active', 'stopped'],
};

export const deploymentCurrentStatuses = [
  'pending',
  'syncing',
  'healthy',
  'degraded',
  'failed',
  'stopped',
] as const;
export type DeploymentCurrentStatus = (typeof deploymentCurrentStatuses)[number];
/** Any observed state may go back to syncing (a new reconcile) or to failed. */
export const deploymentCurrentStatusTransitions: StatusTransitions<DeploymentCurrentStatus> = {
  pending: ['syncing', 'failed', 'stopped'],
  syncing: ['healthy', 'degraded', 'failed', 'stopped', 'pending'],
  healthy: ['syncing', 'degraded', 'failed', 'stopped'],
  degraded: ['syncing', 'healthy', 'failed', 'stopped'],
  failed: ['syncing', 'pending', 'stopped'],
  stopped: ['syncing', 'pending'],
};

export interface DeploymentsTable {
  id: Generated<string>;
  project_id: string;
  environment: string;
  ops_repo_id: string | null;
  image_ref: string | null;
  artifact_id: string | null;
  pipeline_id: string | null;
  commit_sha: string | null;
  values_override: Json<JsonObject>;
  namespace: string | null;
  auto_rollback: Generated<boolean>;
  desired_status: Generated<DeploymentDesiredStatus>;
  current_status: Generated<DeploymentCurrentStatus>;
  status_message: string | null;
  /** Bumped on every change of what should run; compared with observed_generation. */
  generation: Generated<number>;
  observed_generation: Generated<number>;
  current_ops_sha: string | null;
  lease_holder: string | null;
  lease_expires_at: NullableTimestamp;
  deployed_by: string | null;
  deployed_at: NullableTimestamp;
  /** Who asked for the current desired state (PATCH, rollback); NULL: the publishing pipeline's trigger. */
  requested_by: string | null;
  /** The history entry a manual rollback restores; NULL: the previous successful one. */
  rollback_to: string | null;
  /** What serves now, as the reconciler left it (target, release, port, applied manifests). */
  runtime: Json<JsonObject>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const deploymentActions = ['deploy', 'rollback', 'stop', 'scale'] as const;
export type DeploymentAction = (typeof deploymentActions)[number];

export const deploymentResults = ['success', 'failure'] as const;
export type DeploymentResult = (typeof deploymentResults)[number];

export interface DeploymentHistoryTable {
  id: Generated<string>;
  deployment_id: string;
  project_id: string;
  environment: string;
  action: DeploymentAction;
  result: DeploymentResult;
  image_ref: string | null;
  artifact_id: string | null;
  pipeline_id: string | null;
  commit_sha: string | null;
  ops_sha: string | null;
  /** NULL = the reconciler acting on its own. */
  actor_id: string | null;
  message: Generated<string>;
  duration_ms: number | null;
  /** The rendered manifests this entry applied (a rollback re-applies them). */
  manifests: string | null;
  values_override: Json<JsonObject>;
  created_at: DefaultTimestamp;
}

export const previewEnvironmentStatuses = ['active', 'tearing_down', 'torn_down'] as const;
export type PreviewEnvironmentStatus = (typeof previewEnvironmentStatuses)[number];
/** torn_down → active: the MR was reopened or the branch pushed again. */
export const previewEnvironmentStatusTransitions: StatusTransitions<PreviewEnvironmentStatus> = {
  active: ['tearing_down', 'torn_down'],
  tearing_down: ['torn_down', 'active'],
  torn_down: ['active'],
};

export interface PreviewEnvironmentsTable {
  id: Generated<string>;
  project_id: string;
  /** `preview-<slug>`; also the deployments row's environment. */
  environment: string;
  branch: string;
  mr_id: string | null;
  status: Generated<PreviewEnvironmentStatus>;
  expires_at: NullableTimestamp;
  torn_down_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const deployMrCheckConclusions = ['success', 'neutral', 'failure'] as const;
export type DeployMrCheckConclusion = (typeof deployMrCheckConclusions)[number];

/** One affected environment of a `deploy/diff` merge-request check. */
export interface DeployMrCheckEnvironment {
  project_id: string;
  project: string;
  environment: string;
  source: 'ops_repo' | 'project';
  diff: string;
  error: string | null;
}

export interface DeployMrChecksTable {
  merge_request_id: string;
  project_id: string;
  head_sha: string;
  name: Generated<string>;
  conclusion: DeployMrCheckConclusion;
  summary: string;
  environments: Json<DeployMrCheckEnvironment[]>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Observe

export interface TracesTable {
  id: Generated<string>;
  trace_id: string;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  root_service: string | null;
  root_name: string | null;
  start_time: Timestamp;
  end_time: Timestamp;
  duration_ms: Generated<number>;
  span_count: Generated<number>;
  error_count: Generated<number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const spanKinds = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const;
export type SpanKind = (typeof spanKinds)[number];

export const spanStatusCodes = ['unset', 'ok', 'error'] as const;
export type SpanStatusCode = (typeof spanStatusCodes)[number];
/** Spans are immutable once ingested. */
export const spanStatusCodeTransitions: StatusTransitions<SpanStatusCode> = {
  unset: [],
  ok: [],
  error: [],
};

export interface SpansTable {
  id: Generated<string>;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: Generated<SpanKind>;
  status_code: Generated<SpanStatusCode>;
  status_message: string | null;
  service: string | null;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  start_time: Timestamp;
  end_time: Timestamp;
  duration_ms: Generated<number>;
  attributes: Json<JsonObject>;
  resource_attributes: Json<JsonObject>;
  events: Json<JsonValue[]>;
  links: Json<JsonValue[]>;
  created_at: DefaultTimestamp;
}

/** Ordered from least to most severe (the log search filters by level ≥). */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof logLevels)[number];

export interface LogEntriesTable {
  id: Generated<string>;
  timestamp: Timestamp;
  trace_id: string | null;
  span_id: string | null;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  service: Generated<string>;
  level: Generated<LogLevel>;
  message: Generated<string>;
  attributes: Json<JsonObject>;
  source_namespace: string | null;
  source_pod: string | null;
  source_container: string | null;
  created_at: DefaultTimestamp;
}

export const metricTypes = ['gauge', 'counter', 'histogram', 'summary'] as const;
export type MetricType = (typeof metricTypes)[number];

export interface MetricSeriesTable {
  id: Generated<string>;
  project_id: string | null;
  name: string;
  labels: Json<Record<string, string>>;
  type: MetricType;
  unit: Generated<string>;
  description: Generated<string>;
  service: string | null;
  last_value: number | null;
  last_sample_at: NullableTimestamp;
  /** OTLP aggregation temporality of counters and histograms (migration 0018). */
  temporality: 'delta' | 'cumulative' | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

/** Histogram: `{bounds, counts}`; summary: `{quantiles: [{q, v}]}`. */
export interface MetricBuckets {
  bounds?: number[];
  counts?: number[];
  quantiles?: { q: number; v: number }[];
}

export interface MetricSamplesTable {
  series_id: string;
  timestamp: Timestamp;
  value: number | null;
  count: number | null;
  sum: number | null;
  buckets: NullableJson<MetricBuckets>;
  created_at: DefaultTimestamp;
}

export const observeSignals = ['logs', 'spans', 'metrics'] as const;
export type ObserveSignal = (typeof observeSignals)[number];

export interface ObserveColdFilesTable {
  id: Generated<string>;
  signal: ObserveSignal;
  object_key: string;
  /** UTC day, `yyyy-mm-dd`. */
  day: string;
  min_time: Timestamp;
  max_time: Timestamp;
  row_count: number;
  size_bytes: number;
  project_ids: Generated<string[]>;
  created_at: DefaultTimestamp;
}

export const alertConditions = ['gt', 'gte', 'lt', 'lte', 'eq', 'ne', 'absent'] as const;
export type AlertCondition = (typeof alertConditions)[number];

export const alertSeverities = ['info', 'warning', 'critical'] as const;
export type AlertSeverity = (typeof alertSeverities)[number];

export const alertRuleStates = ['ok', 'pending', 'firing', 'resolved'] as const;
export type AlertRuleState = (typeof alertRuleStates)[number];
/** ok/resolved → firing directly when for_seconds is 0. */
export const alertRuleStateTransitions: StatusTransitions<AlertRuleState> = {
  ok: ['pending', 'firing'],
  pending: ['ok', 'firing'],
  firing: ['resolved'],
  resolved: ['ok', 'pending', 'firing'],
};

export interface AlertRulesTable {
  id: Generated<string>;
  project_id: string | null;
  name: string;
  description: Generated<string>;
  query: string;
  condition: AlertCondition;
  threshold: number | null;
  for_seconds: Generated<number>;
  severity: Generated<AlertSeverity>;
  channels: Generated<NotificationChannel[]>;
  is_enabled: Generated<boolean>;
  state: Generated<AlertRuleState>;
  pending_since: NullableTimestamp;
  last_evaluated_at: NullableTimestamp;
  last_value: number | null;
  last_error: string | null;
  /** Anti-flapping: a firing rule resolves after its condition has been clear this long (0020). */
  resolve_seconds: Generated<number>;
  clear_since: NullableTimestamp;
  /** Notifications muted until then (0020). */
  silenced_until: NullableTimestamp;
  silence_comment: Generated<string>;
  recipient_ids: Generated<string[]>;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const alertEventStatuses = ['firing', 'resolved'] as const;
export type AlertEventStatus = (typeof alertEventStatuses)[number];
/** Alert events are immutable: a transition of the rule writes a new row. */
export const alertEventStatusTransitions: StatusTransitions<AlertEventStatus> = {
  firing: [],
  resolved: [],
};

export interface AlertEventsTable {
  id: Generated<string>;
  rule_id: string;
  project_id: string | null;
  status: AlertEventStatus;
  value: number | null;
  threshold: number | null;
  message: Generated<string>;
  /** When the condition first held for this episode. */
  started_at: Timestamp;
  /** The transition was not announced: the rule was silenced (0020). */
  silenced: Generated<boolean>;
  created_at: DefaultTimestamp;
}

export const savedSearchSignals = ['logs', 'traces', 'metrics'] as const;
export type SavedSearchSignal = (typeof savedSearchSignals)[number];
export const savedSearchVisibilities = ['private', 'project'] as const;
export type SavedSearchVisibility = (typeof savedSearchVisibilities)[number];

export interface SavedSearchesTable {
  id: Generated<string>;
  user_id: string;
  project_id: string | null;
  name: string;
  signal: SavedSearchSignal;
  query: string;
  filters: Json<JsonObject>;
  /** private: its owner only; project: whoever can read the project (0020). */
  visibility: Generated<SavedSearchVisibility>;
  description: Generated<string>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Secrets

export const secretScopes = ['pipeline', 'agent', 'deploy', 'all'] as const;
export type SecretScope = (typeof secretScopes)[number];

export interface SecretsTable {
  id: Generated<string>;
  /** NULL = global secret. */
  project_id: string | null;
  name: string;
  /** version byte ‖ nonce ‖ ciphertext ‖ tag. */
  ciphertext: Bytea;
  key_version: Generated<number>;
  scope: Generated<SecretScope>;
  version: Generated<number>;
  created_by: string | null;
  updated_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Notify

export const notificationChannels = ['in_app', 'email', 'webhook'] as const;
export type NotificationChannel = (typeof notificationChannels)[number];

export const notificationStatuses = ['pending', 'sent', 'read', 'failed'] as const;
export type NotificationStatus = (typeof notificationStatuses)[number];
/** pending → read: an in-app notification read before the push to the UI was recorded. */
export const notificationStatusTransitions: StatusTransitions<NotificationStatus> = {
  pending: ['sent', 'failed', 'read'],
  sent: ['read'],
  read: [],
  failed: ['pending'],
};

export interface NotificationsTable {
  id: Generated<string>;
  user_id: string;
  project_id: string | null;
  type: string;
  subject: string;
  body: Generated<string>;
  channel: NotificationChannel;
  status: Generated<NotificationStatus>;
  ref_type: string | null;
  ref_id: string | null;
  recipient: string | null;
  group_key: string | null;
  group_count: Generated<number>;
  attempts: Generated<number>;
  next_attempt_at: NullableTimestamp;
  error: string | null;
  sent_at: NullableTimestamp;
  read_at: NullableTimestamp;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface NotificationPreferencesTable {
  id: Generated<string>;
  user_id: string;
  /** Event type (e.g. `pipeline.failed`) or `*` for every type. */
  event_type: string;
  channels: Generated<NotificationChannel[]>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface NotificationWebhooksTable {
  id: Generated<string>;
  user_id: string;
  url: string;
  secret_ciphertext: NullableBytea;
  is_active: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// Audit

export interface AuditLogTable {
  id: Generated<string>;
  /** No foreign key: history survives user deletion. */
  actor_id: string | null;
  actor_name: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  /** No foreign key: history survives project deletion. */
  project_id: string | null;
  detail: Json<JsonObject>;
  ip: string | null;
  created_at: DefaultTimestamp;
}

// ---------------------------------------------------------------------------------------------
// The database

export interface Database {
  scheduler_leases: SchedulerLeasesTable;
  users: UsersTable;
  permissions: PermissionsTable;
  roles: RolesTable;
  role_permissions: RolePermissionsTable;
  user_roles: UserRolesTable;
  delegations: DelegationsTable;
  auth_sessions: AuthSessionsTable;
  api_tokens: ApiTokensTable;
  projects: ProjectsTable;
  project_redirects: ProjectRedirectsTable;
  protected_branches: ProtectedBranchesTable;
  lfs_objects: LfsObjectsTable;
  lfs_locks: LfsLocksTable;
  issues: IssuesTable;
  merge_requests: MergeRequestsTable;
  mr_reviewers: MrReviewersTable;
  mr_merge_intents: MrMergeIntentsTable;
  mr_reviews: MrReviewsTable;
  comments: CommentsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  agent_sessions: AgentSessionsTable;
  agent_messages: AgentMessagesTable;
  agent_settings: AgentSettingsTable;
  agent_project_settings: AgentProjectSettingsTable;
  pipelines: PipelinesTable;
  pipeline_steps: PipelineStepsTable;
  artifacts: ArtifactsTable;
  pipeline_schedules: PipelineSchedulesTable;
  ops_repos: OpsReposTable;
  deployments: DeploymentsTable;
  deployment_history: DeploymentHistoryTable;
  preview_environments: PreviewEnvironmentsTable;
  deploy_mr_checks: DeployMrChecksTable;
  traces: TracesTable;
  spans: SpansTable;
  log_entries: LogEntriesTable;
  metric_series: MetricSeriesTable;
  metric_samples: MetricSamplesTable;
  observe_cold_files: ObserveColdFilesTable;
  alert_rules: AlertRulesTable;
  alert_events: AlertEventsTable;
  saved_searches: SavedSearchesTable;
  secrets: SecretsTable;
  notifications: NotificationsTable;
  notification_preferences: NotificationPreferencesTable;
  notification_webhooks: NotificationWebhooksTable;
  audit_log: AuditLogTable;
}

// ---------------------------------------------------------------------------------------------
// Row aliases (Selectable = what a query returns, Insertable = what an insert takes)

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type PermissionRow = Selectable<PermissionsTable>;
export type NewPermission = Insertable<PermissionsTable>;
export type RoleRow = Selectable<RolesTable>;
export type NewRole = Insertable<RolesTable>;
export type RolePermissionRow = Selectable<RolePermissionsTable>;
export type NewRolePermission = Insertable<RolePermissionsTable>;
export type UserRoleRow = Selectable<UserRolesTable>;
export type NewUserRole = Insertable<UserRolesTable>;
export type DelegationRow = Selectable<DelegationsTable>;
export type NewDelegation = Insertable<DelegationsTable>;
export type AuthSessionRow = Selectable<AuthSessionsTable>;
export type NewAuthSession = Insertable<AuthSessionsTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
export type NewApiToken = Insertable<ApiTokensTable>;
export type ProjectRow = Selectable<ProjectsTable>;
export type NewProject = Insertable<ProjectsTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
export type NewAuditLog = Insertable<AuditLogTable>;
export type SchedulerLeaseRow = Selectable<SchedulerLeasesTable>;

export type ProtectedBranchRow = Selectable<ProtectedBranchesTable>;
export type LfsObjectRow = Selectable<LfsObjectsTable>;
export type IssueRow = Selectable<IssuesTable>;
export type MergeRequestRow = Selectable<MergeRequestsTable>;
export type MrReviewRow = Selectable<MrReviewsTable>;
export type CommentRow = Selectable<CommentsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
export type AgentSessionRow = Selectable<AgentSessionsTable>;
export type AgentMessageRow = Selectable<AgentMessagesTable>;
export type PipelineRow = Selectable<PipelinesTable>;
export type PipelineStepRow = Selectable<PipelineStepsTable>;
export type ArtifactRow = Selectable<ArtifactsTable>;
export type OpsRepoRow = Selectable<OpsReposTable>;
export type DeploymentRow = Selectable<DeploymentsTable>;
export type DeploymentHistoryRow = Selectable<DeploymentHistoryTable>;
export type PreviewEnvironmentRow = Selectable<PreviewEnvironmentsTable>;
export type SpanRow = Selectable<SpansTable>;
export type LogEntryRow = Selectable<LogEntriesTable>;
export type MetricSeriesRow = Selectable<MetricSeriesTable>;
export type AlertRuleRow = Selectable<AlertRulesTable>;
export type AlertEventRow = Selectable<AlertEventsTable>;
export type SecretRow = Selectable<SecretsTable>;
export type NotificationRow = Selectable<NotificationsTable>;
export type NotificationPreferenceRow = Selectable<NotificationPreferencesTable>;
