import { z } from 'zod';
import {
  deploymentActions,
  deploymentCurrentStatuses,
  deploymentDesiredStatuses,
  deploymentResults,
} from '../store/schema.js';

const timestamp = z.string().describe('ISO 8601');

export const DeploymentHistorySchema = z
  .object({
    id: z.uuid(),
    action: z.enum(deploymentActions),
    result: z.enum(deploymentResults),
    image_ref: z.string().nullable(),
    artifact_id: z.uuid().nullable(),
    pipeline_id: z.uuid().nullable(),
    commit_sha: z.string().nullable(),
    ops_sha: z.string().nullable(),
    actor_id: z
      .uuid()
      .nullable()
      .describe('null: the reconciler acting on its own (automatic rollback, restart)'),
    actor_name: z.string().nullable(),
    message: z.string(),
    duration_ms: z.number().int().nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'DeploymentHistoryEntry' });
export type DeploymentHistoryView = z.output<typeof DeploymentHistorySchema>;

export const DeploymentSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    environment: z.string(),
    ops_repo_id: z.uuid().nullable(),
    image_ref: z.string().nullable(),
    artifact_id: z.uuid().nullable(),
    pipeline_id: z.uuid().nullable(),
    commit_sha: z.string().nullable(),
    values_override: z.record(z.string(), z.unknown()),
    namespace: z.string().nullable(),
    auto_rollback: z.boolean(),
    desired_status: z.enum(deploymentDesiredStatuses),
    current_status: z.enum(deploymentCurrentStatuses),
    status_message: z.string().nullable(),
    generation: z.number().int(),
    observed_generation: z.number().int(),
    current_ops_sha: z.string().nullable(),
    target: z
      .enum(['local', 'kubernetes'])
      .nullable()
      .describe('where the serving version runs; null before the first apply'),
    url: z.string().nullable().describe('local target: the reverse-proxy route of the app'),
    deployed_by: z.uuid().nullable(),
    deployed_at: timestamp.nullable(),
    updated_at: timestamp,
  })
  .meta({ id: 'Deployment' });
export type DeploymentView = z.output<typeof DeploymentSchema>;

export const DeploymentDetailSchema = DeploymentSchema.extend({
  live: z.object({
    serving_here: z.boolean().describe('local target: whether this instance serves a release of it'),
    port: z.number().int().nullable(),
  }),
  history: z.array(DeploymentHistorySchema).describe('the 10 newest entries'),
}).meta({ id: 'DeploymentDetail' });

export const DeploymentListSchema = z.object({
  items: z.array(DeploymentSchema),
  next_cursor: z.string().nullable(),
});
export const DeploymentHistoryListSchema = z.object({
  items: z.array(DeploymentHistorySchema),
  next_cursor: z.string().nullable(),
});

export const DeploymentDiffSchema = z
  .object({
    current: z
      .string()
      .nullable()
      .describe('the manifests applied now (YAML stream), null before the first apply'),
    desired: z.string().nullable().describe('what the next apply would apply, rendered now'),
    error: z
      .string()
      .nullable()
      .describe('why the desired manifests cannot be rendered (file and variable named)'),
    changed: z.boolean(),
    diff: z.string().describe('unified diff current → desired'),
  })
  .meta({ id: 'DeploymentDiff' });

export const OpsRepoSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    repo_url: z.string(),
    project_id: z.uuid().nullable(),
    branch: z.string(),
    path: z.string(),
    credentials_secret: z
      .string()
      .nullable()
      .describe('name of the global secret holding credentials (never the value)'),
    sync_interval_seconds: z.number().int(),
    last_sync_status: z.enum(['success', 'failure']).nullable(),
    last_synced_at: timestamp.nullable(),
    last_sync_sha: z.string().nullable(),
    last_sync_error: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'OpsRepo' });
export type OpsRepoView = z.output<typeof OpsRepoSchema>;
export const OpsRepoListSchema = z.object({
  items: z.array(OpsRepoSchema),
  next_cursor: z.string().nullable(),
});
