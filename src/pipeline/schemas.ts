import { z } from 'zod';
import { pipelineStatuses, pipelineStepStatuses, pipelineTriggers } from '../store/schema.js';

/** Response bodies of the pipeline API (views: types.ts, artifacts.ts). */

const timestamp = z.string().describe('ISO 8601');

export const PipelineStepSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    position: z.number().int(),
    image: z.string().nullable(),
    commands: z.array(z.string()),
    environment: z.record(z.string(), z.string()),
    depends_on: z.array(z.string()),
    allow_failure: z.boolean(),
    timeout_seconds: z.number().int().nullable(),
    publish: z
      .object({ artifact: z.string().optional(), image: z.string().optional(), environment: z.string() })
      .nullable(),
    status: z.enum(pipelineStepStatuses),
    exit_code: z.number().int().nullable(),
    error: z.string().nullable(),
    log_size: z.number().int().nullable(),
    duration_ms: z.number().int().nullable(),
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'PipelineStep' });

const pipelineFields = {
  id: z.uuid(),
  /** Per project: `/api/projects/:id/pipelines/42`. */
  number: z.number().int(),
  project_id: z.uuid(),
  trigger: z.enum(pipelineTriggers),
  git_ref: z.string(),
  ref_name: z.string(),
  commit_sha: z.string(),
  commit_message: z.string(),
  status: z.enum(pipelineStatuses),
  error: z.string().nullable(),
  triggered_by: z.uuid().nullable(),
  mr_id: z.uuid().nullable(),
  retry_of: z.uuid().nullable(),
  concurrency_group: z.string().nullable(),
  variables: z.record(z.string(), z.string()),
  created_at: timestamp,
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  duration_ms: z.number().int().nullable(),
};

/** A pipeline with its steps (one pipeline, create, cancel, retry). */
export const PipelineSchema = z
  .object({ ...pipelineFields, steps: z.array(PipelineStepSchema) })
  .meta({ id: 'Pipeline' });

/** A pipeline in a list (without its steps). */
export const PipelineSummarySchema = z.object(pipelineFields).meta({ id: 'PipelineSummary' });

export const PipelineListSchema = z.object({
  items: z.array(PipelineSummarySchema),
  next_cursor: z.string().nullable(),
});

export const ArtifactSchema = z
  .object({
    id: z.uuid(),
    pipeline_id: z.uuid(),
    project_id: z.uuid(),
    step_id: z.uuid().nullable(),
    name: z.string(),
    content_type: z.string(),
    size_bytes: z.number().int(),
    sha256: z.string().nullable(),
    expires_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Artifact' });

export const ArtifactListSchema = z.object({ items: z.array(ArtifactSchema), next_cursor: z.null() });
