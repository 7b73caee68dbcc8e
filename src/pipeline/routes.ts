import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route } from '../core/http.js';
import { pipelineStatuses, pipelineTriggers } from '../store/schema.js';
import { type LogStreamDeps, serveStepLog } from './log-stream.js';
import { PIPELINE_REASONS } from './reasons.js';
import { ArtifactListSchema, PipelineListSchema, PipelineSchema } from './schemas.js';
import type { PipelineService } from './service.js';
import { VARIABLE_NAME } from './types.js';

/** A pipeline by id or by its number in the project. */
const pipelineRef = z.union([z.uuid(), z.string().regex(/^[1-9][0-9]{0,9}$/, 'a pipeline id or number')]);
/** A step by id or by name. */
const stepRef = z.string().min(1).max(100);

const projectParams = z.object({ id: z.uuid() });
const pipelineParams = z.object({ id: z.uuid(), pid: pipelineRef });
const stepParams = z.object({ id: z.uuid(), pid: pipelineRef, sid: stepRef });
const artifactParams = z.object({ id: z.uuid(), aid: z.uuid() });

const listQuery = paginationQuery.extend({
  status: z.enum(pipelineStatuses).optional(),
  trigger: z.enum(pipelineTriggers).optional(),
  ref: z.string().min(1).max(255).optional(),
});

const createBody = z.object({
  git_ref: z.string().min(1).max(255),
  variables: z
    .record(z.string(), z.string().max(10_000))
    // Checked on the whole record: zod reports a bad record key only as "Invalid key in record".
    .refine((v) => Object.keys(v).every((k) => k.length <= 100 && VARIABLE_NAME.test(k)), {
      message: 'variable names are upper-case letters, digits and "_" (at most 100 characters)',
    })
    .refine((v) => Object.keys(v).length <= 100, 'at most 100 variables')
    .optional(),
});

const read = { permission: 'project:read', projectParam: 'id' } as const;
const write = { permission: 'project:write', projectParam: 'id' } as const;

export function pipelineRoutes(service: PipelineService, logs: LogStreamDeps): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/projects/:id/pipelines',
      summary: 'Run the pipeline of a branch or tag (api trigger), with optional variables',
      tags: ['pipelines'],
      access: write,
      params: projectParams,
      body: createBody,
      status: 201,
      response: PipelineSchema,
      reasons: [
        PIPELINE_REASONS.unknownRef,
        PIPELINE_REASONS.noDefinition,
        PIPELINE_REASONS.apiDisabled,
        PIPELINE_REASONS.injectedVariable,
      ],
      handler: async ({ params, body, actor }) =>
        service.createFromApi(actor, params.id, body.git_ref, body.variables ?? {}),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/pipelines',
      summary: "The project's pipelines, newest first (filters: status, ref, trigger)",
      tags: ['pipelines'],
      access: read,
      params: projectParams,
      query: listQuery,
      response: PipelineListSchema,
      handler: async ({ params, query }) => service.list(params.id, query),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/pipelines/:pid',
      summary: 'One pipeline (by id or number) with its steps (status, durations, exit codes, errors)',
      tags: ['pipelines'],
      access: read,
      params: pipelineParams,
      response: PipelineSchema,
      handler: async ({ params }) => service.get(params.id, params.pid),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/pipelines/:pid/cancel',
      summary: 'Cancel a pending or running pipeline (running steps are killed within seconds)',
      tags: ['pipelines'],
      access: write,
      params: pipelineParams,
      response: PipelineSchema,
      reasons: [PIPELINE_REASONS.notCancellable],
      handler: async ({ params, actor }) => service.cancel(actor, params.id, params.pid),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/pipelines/:pid/retry',
      summary: 'Run a finished pipeline again (same commit, ref, variables and definition)',
      tags: ['pipelines'],
      access: write,
      params: pipelineParams,
      status: 201,
      response: PipelineSchema,
      reasons: [PIPELINE_REASONS.notRetryable, PIPELINE_REASONS.noDefinition],
      handler: async ({ params, actor }) => service.retry(actor, params.id, params.pid, actor.id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/pipelines/:pid/steps/:sid/logs',
      summary:
        'Step log (step by id or name) from ?offset= (bytes; x-next-offset tells where to resume); Accept: text/event-stream streams it live',
      tags: ['pipelines'],
      access: read,
      params: stepParams,
      query: z.object({ offset: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0) }),
      raw: true,
      produces: {
        status: 200,
        contentType: 'text/plain',
        description: 'the log bytes from offset (text/event-stream when asked for: chunk and end events)',
      },
      handler: async ({ params, query, req, reply }) => {
        const ids = await service.stepIds(params.id, params.pid, params.sid);
        return serveStepLog(logs, { projectId: params.id, ...ids }, query.offset, req, reply);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/pipelines/:pid/artifacts',
      summary: "The pipeline's artifacts",
      tags: ['pipelines'],
      access: read,
      params: pipelineParams,
      response: ArtifactListSchema,
      handler: async ({ params }) => ({
        items: await service.artifacts(params.id, params.pid),
        next_cursor: null,
      }),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/artifacts/:aid/download',
      summary: 'Download an artifact: redirect to a short-lived presigned URL',
      tags: ['pipelines'],
      access: read,
      params: artifactParams,
      raw: true,
      produces: { status: 302, description: 'redirect to a presigned URL of the artifact (valid 5 minutes)' },
      handler: async ({ params, reply }) => {
        const url = await service.artifactDownloadUrl(params.id, params.aid);
        return reply.header('cache-control', 'no-store').redirect(url, 302);
      },
    }),
  ];
}
