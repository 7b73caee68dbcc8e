import { type AnyRouteDef, paginationQuery, route } from '../../core/http.js';
import { QUERY_REASONS } from '../query-lang/index.js';
import { alertRuleView } from './queries.js';
import { ALERT_REASONS } from './reasons.js';
import {
  AlertEventListSchema,
  AlertRuleListSchema,
  AlertRuleSchema,
  alertListQuery,
  alertRuleParams,
  createAlertBody,
  silenceBody,
  updateAlertBody,
} from './schemas.js';
import type { AlertsService } from './service.js';

/**
 * `/api/observe/alerts`: reading needs `observe:read`, changing `alert:manage`, on the rule's project
 * (a platform-wide rule: globally). The rule is loaded first, so its project decides (hence the
 * routes declare `authenticated` and authorize in the handler).
 */
export function alertRoutes(alerts: AlertsService): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/observe/alerts',
      summary:
        'Create an alert rule (query in the observe query language, e.g. `count(logs{level="error"}[10m]) > 5`)',
      tags: ['observe'],
      access: 'authenticated',
      status: 201,
      body: createAlertBody,
      response: AlertRuleSchema,
      reasons: [QUERY_REASONS.invalidQuery, ALERT_REASONS.recipientUnknown],
      handler: async ({ body, authorize, requirePrincipal, actor }) => {
        await authorize('alert:manage', body.project_id ?? null);
        return alerts.create({ ...actor, id: requirePrincipal().userId }, body);
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/alerts',
      summary: "A project's alert rules (project_id), or the platform-wide ones; newest first",
      tags: ['observe'],
      access: 'authenticated',
      query: alertListQuery,
      response: AlertRuleListSchema,
      handler: async ({ query, authorize }) => {
        await authorize('observe:read', query.project_id ?? null);
        return alerts.list(query);
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/alerts/:id',
      summary: 'An alert rule with its evaluation state',
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      response: AlertRuleSchema,
      handler: async ({ params, authorize }) => {
        const rule = await alerts.get(params.id);
        await authorize('observe:read', rule.project_id);
        return alertRuleView(rule);
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/observe/alerts/:id',
      summary: 'Change an alert rule (its state is kept; a changed query is checked first)',
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      body: updateAlertBody,
      response: AlertRuleSchema,
      reasons: [QUERY_REASONS.invalidQuery, ALERT_REASONS.recipientUnknown],
      handler: async ({ params, body, authorize, actor }) => {
        const rule = await alerts.get(params.id);
        await authorize('alert:manage', rule.project_id);
        return alerts.update(actor, rule, body);
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/observe/alerts/:id',
      summary: 'Delete an alert rule and its events',
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      status: 204,
      handler: async ({ params, authorize, actor }) => {
        const rule = await alerts.get(params.id);
        await authorize('alert:manage', rule.project_id);
        await alerts.remove(actor, rule);
        return undefined;
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/alerts/:id/events',
      summary: "The rule's transitions (firing, resolved), newest first",
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      query: paginationQuery,
      response: AlertEventListSchema,
      handler: async ({ params, query, authorize }) => {
        const rule = await alerts.get(params.id);
        await authorize('observe:read', rule.project_id);
        return alerts.events(rule.id, query);
      },
    }),
    route({
      method: 'PUT',
      url: '/api/observe/alerts/:id/silence',
      summary:
        'Silence a rule until a time: it is still evaluated and its events recorded, nobody is notified',
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      body: silenceBody,
      response: AlertRuleSchema,
      reasons: [ALERT_REASONS.silenceInPast],
      handler: async ({ params, body, authorize, actor }) => {
        const rule = await alerts.get(params.id);
        await authorize('alert:manage', rule.project_id);
        return alerts.silence(actor, rule, new Date(body.until), body.comment ?? '');
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/observe/alerts/:id/silence',
      summary: 'End the silence of a rule',
      tags: ['observe'],
      access: 'authenticated',
      params: alertRuleParams,
      response: AlertRuleSchema,
      handler: async ({ params, authorize, actor }) => {
        const rule = await alerts.get(params.id);
        await authorize('alert:manage', rule.project_id);
        return alerts.silence(actor, rule, null, '');
      },
    }),
  ];
}
