import { z } from 'zod';
import { paginationQuery } from '../core/http.js';
import { PERMISSIONS } from '../core/permissions.js';
import { type AgentSessionRow, agentSessionStatuses, agentStopReasons } from '../store/schema.js';
import type { StreamedMessage } from './run.js';

const timestamp = z.string().describe('ISO 8601');
const INT4_MAX = 2_147_483_647;

export const sessionParams = z.object({ id: z.uuid(), sid: z.uuid() });
export const projectParams = z.object({ id: z.uuid() });
export const issueSessionParams = z.object({
  id: z.uuid(),
  number: z.coerce.number().int().min(1).max(INT4_MAX),
});

export const limitsSchema = z
  .object({
    max_cost_usd: z.number().positive().max(100_000).optional(),
    max_tokens: z.number().int().positive().max(1e12).optional(),
    max_turns: z.number().int().positive().max(100_000).optional(),
    max_wall_seconds: z
      .number()
      .int()
      .positive()
      .max(7 * 86_400)
      .optional(),
  })
  .strict()
  .meta({ id: 'AgentSessionLimits' });

const providerConfig = z
  .record(z.string().max(100), z.union([z.string().max(1000), z.number(), z.boolean()]))
  .refine((r) => Object.keys(r).length <= 20, 'at most 20 options')
  .describe('provider options (model, max_turns); never a command, never secrets');

export const createSessionBody = z
  .object({
    prompt: z.string().min(1).max(100_000),
    provider: z.string().min(1).max(100).optional(),
    provider_config: providerConfig.optional(),
    branch: z.string().min(1).max(255).optional(),
    permissions: z.array(z.enum(PERMISSIONS)).max(20).optional(),
    limits: limitsSchema.optional(),
  })
  .strict();

export const issueSessionBody = createSessionBody.omit({ prompt: true }).extend({
  prompt: z.string().min(1).max(20_000).optional().describe('added to the prompt built from the issue'),
});

export const listSessionsQuery = paginationQuery.extend({
  status: z.enum(agentSessionStatuses).optional(),
  user: z.uuid().optional(),
});

export const messagesQuery = z.object({
  after: z.coerce.number().int().min(0).max(INT4_MAX).default(0).describe('sequence number to start after'),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

export const streamQuery = z.object({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .max(INT4_MAX)
    .optional()
    .describe('replay events after this sequence number'),
});

export const messageBody = z.object({ content: z.string().min(1).max(100_000) }).strict();

export const messageSchema = z
  .object({
    seq: z.number().int(),
    role: z.string(),
    kind: z.string(),
    content: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: timestamp,
  })
  .meta({ id: 'AgentMessage' });

export const sessionSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    user_id: z.uuid(),
    agent_user_id: z.uuid().nullable(),
    status: z.enum(agentSessionStatuses),
    stop_reason: z.enum(agentStopReasons).nullable(),
    provider: z.string(),
    provider_config: z.record(z.string(), z.unknown()),
    branch: z.string().nullable(),
    base_sha: z.string().nullable(),
    permissions: z.array(z.string()),
    limits: z.record(z.string(), z.number()),
    runner: z.string().nullable(),
    exit_code: z.number().int().nullable(),
    error: z.string().nullable(),
    issue_number: z.number().int().nullable(),
    merge_request_number: z.number().int().nullable(),
    totals: z.object({
      input_tokens: z.number(),
      output_tokens: z.number(),
      cache_read_tokens: z.number(),
      cache_write_tokens: z.number(),
      cost_usd: z.number(),
      num_turns: z.number(),
    }),
    last_seq: z.number().int(),
    created_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'AgentSession' });

export const sessionDetailSchema = sessionSchema
  .extend({
    produced: z.object({
      commits: z.array(z.string()),
      merge_requests: z.array(z.number().int()),
      pipelines: z.array(
        z.object({
          id: z.uuid(),
          number: z.number().int().nullable(),
          status: z.string(),
          commit_sha: z.string().nullable(),
        }),
      ),
    }),
    messages: z.array(messageSchema),
    next_after: z.number().int().nullable(),
  })
  .meta({ id: 'AgentSessionDetail' });

export const sessionPageSchema = z.object({
  items: z.array(sessionSchema),
  next_cursor: z.string().nullable(),
});
export const messageAcceptedSchema = z.object({ seq: z.number().int() });

export const settingsSchema = z
  .object({
    max_running_total: z.number().int().min(0).max(100_000),
    max_running_per_project: z.number().int().min(0).max(100_000),
    sessions_per_user_per_hour: z.number().int().min(0).max(100_000),
    timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400),
    claude_command: z.string().min(1).max(1000),
    image: z.string().min(1).max(500),
    providers: z.record(
      z.string().regex(/^[a-z][a-z0-9-]{0,62}$/),
      z
        .object({
          command: z.array(z.string().min(1).max(4000)).min(1).max(100),
          prompt: z.enum(['stdin', 'env', 'arg']).default('env'),
          image: z.string().min(1).max(500).optional(),
        })
        .strict(),
    ),
  })
  .meta({ id: 'AgentSettings' });
export const settingsBody = settingsSchema.partial().strict();

export const projectSettingsSchema = z
  .object({
    max_running: z.number().int().min(0).max(100_000).nullable(),
    daily_cost_usd: z.number().min(0).max(1e9).nullable(),
  })
  .meta({ id: 'AgentProjectSettings' });
export const projectSettingsBody = projectSettingsSchema.partial().strict();

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function sessionView(r: AgentSessionRow): z.output<typeof sessionSchema> {
  return {
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    agent_user_id: r.agent_user_id,
    status: r.status,
    stop_reason: r.stop_reason,
    provider: r.provider,
    provider_config: r.provider_config as Record<string, unknown>,
    branch: r.branch,
    base_sha: r.base_sha,
    permissions: r.permissions,
    limits: r.limits as Record<string, number>,
    runner: r.runner,
    exit_code: r.exit_code,
    error: r.error,
    issue_number: r.issue_number,
    merge_request_number: r.merge_request_number,
    totals: {
      input_tokens: Number(r.input_tokens),
      output_tokens: Number(r.output_tokens),
      cache_read_tokens: Number(r.cache_read_tokens),
      cache_write_tokens: Number(r.cache_write_tokens),
      cost_usd: r.cost_usd,
      num_turns: r.num_turns,
    },
    last_seq: r.next_message_seq - 1,
    created_at: iso(r.created_at)!,
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
  };
}

export type MessageView = StreamedMessage;
