import { z } from 'zod';
import { paginationQuery } from '../../core/http.js';
import type { ViewOf } from '../../projects/index.js';
import { alertConditions, alertEventStatuses, alertRuleStates, alertSeverities } from '../../store/schema.js';

/** Request and response schemas of the alert routes; the views derive from the response schemas. */

const timestamp = z.string().describe('ISO 8601');
const MAX_SECONDS = 7 * 86400;
const channels = z
  .array(z.enum(['in_app', 'email', 'webhook']))
  .max(3)
  .transform((a) => [...new Set(a)]);

export const alertRuleParams = z.object({ id: z.uuid() });

export const createAlertBody = z.object({
  project_id: z
    .uuid()
    .nullish()
    .describe('the project whose data the rule reads; omitted: platform-wide (admins)'),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  query: z
    .string()
    .min(1)
    .max(4000)
    .describe(
      'an alert expression (docs/observe-query.md), e.g. `avg(http_server_duration_ms{service="api"}[5m]) > 300`',
    ),
  for_seconds: z
    .number()
    .int()
    .min(0)
    .max(MAX_SECONDS)
    .optional()
    .describe('the condition must hold this long before firing'),
  resolve_seconds: z
    .number()
    .int()
    .min(0)
    .max(MAX_SECONDS)
    .optional()
    .describe(
      'anti-flapping: a firing alert resolves once the condition has been clear this long (default 60)',
    ),
  severity: z.enum(alertSeverities).optional(),
  channels: channels.optional().describe('in_app and email notify the recipients; webhook: project webhooks'),
  recipient_ids: z
    .array(z.uuid())
    .max(50)
    .optional()
    .describe('told besides the creator and the project owner'),
  is_enabled: z.boolean().optional(),
});
export type CreateAlertInput = z.output<typeof createAlertBody>;

export const updateAlertBody = createAlertBody.omit({ project_id: true }).partial();
export type UpdateAlertInput = z.output<typeof updateAlertBody>;

export const silenceBody = z.object({
  until: z.iso.datetime({ offset: true }).describe('notifications stay muted until then'),
  comment: z.string().max(500).optional(),
});

export const alertListQuery = paginationQuery.extend({
  project_id: z.uuid().optional().describe('omitted: the platform-wide rules'),
  state: z.enum(alertRuleStates).optional(),
});
export type AlertListFilter = z.output<typeof alertListQuery>;

export const AlertRuleSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid().nullable(),
    name: z.string(),
    description: z.string(),
    query: z.string(),
    condition: z.enum(alertConditions).describe('parsed from the query'),
    threshold: z.number().nullable().describe('parsed from the query; null for absent'),
    for_seconds: z.number().int(),
    resolve_seconds: z.number().int(),
    severity: z.enum(alertSeverities),
    channels: z.array(z.string()),
    recipient_ids: z.array(z.uuid()),
    is_enabled: z.boolean(),
    state: z.enum(alertRuleStates),
    pending_since: timestamp.nullable().describe('when the condition of the current episode first held'),
    last_evaluated_at: timestamp.nullable(),
    last_value: z.number().nullable(),
    last_error: z.string().nullable(),
    silenced_until: timestamp.nullable(),
    silence_comment: z.string(),
    created_by: z.uuid().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'AlertRule' });
export type AlertRuleView = ViewOf<z.output<typeof AlertRuleSchema>>;

export const AlertRuleListSchema = z
  .object({ items: z.array(AlertRuleSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'AlertRuleList' });

export const AlertEventSchema = z
  .object({
    id: z.uuid(),
    rule_id: z.uuid(),
    project_id: z.uuid().nullable(),
    status: z.enum(alertEventStatuses),
    value: z.number().nullable(),
    threshold: z.number().nullable(),
    message: z.string(),
    started_at: timestamp.describe(
      'when the condition of the episode first held (same for its firing and resolved rows)',
    ),
    silenced: z.boolean().describe('the transition was not announced: the rule was silenced'),
    created_at: timestamp,
  })
  .meta({ id: 'AlertEvent' });
export type AlertEventView = ViewOf<z.output<typeof AlertEventSchema>>;

export const AlertEventListSchema = z
  .object({ items: z.array(AlertEventSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'AlertEventList' });
