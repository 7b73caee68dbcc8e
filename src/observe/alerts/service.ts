import { writeAudit } from '../../core/audit.js';
import { notFound, unprocessable } from '../../core/errors.js';
import type { Actor } from '../../core/http.js';
import type { Page } from '../../core/pagination.js';
import { type Db, transaction } from '../../store/db.js';
import type { AlertCondition } from '../../store/schema.js';
import { type AlertExpr, compileAlert, parseAlert, parseOrRefuse } from '../query-lang/index.js';
import {
  type AlertRuleRow,
  activeUserIds,
  alertRuleView,
  findAlertRule,
  listAlertEvents,
  listAlertRules,
} from './queries.js';
import { ALERT_REASONS } from './reasons.js';
import type {
  AlertEventView,
  AlertListFilter,
  AlertRuleView,
  CreateAlertInput,
  UpdateAlertInput,
} from './schemas.js';

const CONDITIONS: Record<string, AlertCondition> = {
  '>': 'gt',
  '>=': 'gte',
  '<': 'lt',
  '<=': 'lte',
  '==': 'eq',
  '!=': 'ne',
};

/** Parses and compiles the rule's query (so a semantic error is refused now, not at evaluation). */
function checkedQuery(
  query: string,
  projectId: string | null,
): { condition: AlertCondition; threshold: number | null } {
  const expr: AlertExpr = parseOrRefuse(() => {
    const e = parseAlert(query);
    compileAlert(e, { projectId }, new Date());
    return e;
  }, 'body.query');
  return expr.kind === 'absent'
    ? { condition: 'absent', threshold: null }
    : { condition: CONDITIONS[expr.op] as AlertCondition, threshold: expr.threshold };
}

const auditDetail = (r: { name: string; query: string }, fields?: string[]) => ({
  name: r.name.slice(0, 80),
  query: r.query.slice(0, 200),
  ...(fields ? { fields } : {}),
});

/** Alert rules: create, change, silence, delete (who may is checked by the routes). */
export class AlertsService {
  constructor(private readonly db: Db) {}

  /** The rule, or 404. */
  async get(id: string): Promise<AlertRuleRow> {
    const rule = await findAlertRule(this.db, id);
    if (!rule) throw notFound('alert rule');
    return rule;
  }

  list(filter: AlertListFilter): Promise<Page<AlertRuleView>> {
    return listAlertRules(this.db, filter);
  }

  events(
    ruleId: string,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<AlertEventView>> {
    return listAlertEvents(this.db, ruleId, page);
  }

  private async checkRecipients(ids: readonly string[] | undefined): Promise<void> {
    if (!ids?.length) return;
    const active = new Set(await activeUserIds(this.db, ids));
    const unknown = ids.filter((id) => !active.has(id));
    if (unknown.length)
      throw unprocessable(
        'unknown or deactivated recipients',
        unknown.map((id) => ({ path: 'body.recipient_ids', message: `no active user ${id}` })),
      ).because(ALERT_REASONS.recipientUnknown);
  }

  async create(actor: Actor & { id: string }, input: CreateAlertInput): Promise<AlertRuleView> {
    const projectId = input.project_id ?? null;
    const parsed = checkedQuery(input.query, projectId);
    await this.checkRecipients(input.recipient_ids);
    return transaction(this.db, async (trx) => {
      const row = await trx
        .insertInto('alert_rules')
        .values({
          project_id: projectId,
          name: input.name,
          description: input.description ?? '',
          query: input.query,
          ...parsed,
          for_seconds: input.for_seconds ?? 0,
          resolve_seconds: input.resolve_seconds ?? 60,
          severity: input.severity ?? 'warning',
          channels: input.channels ?? ['in_app', 'email', 'webhook'],
          recipient_ids: input.recipient_ids ?? [],
          is_enabled: input.is_enabled ?? true,
          created_by: actor.id,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'alert_rule.create',
        resourceType: 'alert_rule',
        resourceId: row.id,
        projectId,
        detail: auditDetail(row),
      });
      return alertRuleView(row);
    });
  }

  async update(actor: Actor, rule: AlertRuleRow, input: UpdateAlertInput): Promise<AlertRuleView> {
    const parsed = input.query !== undefined ? checkedQuery(input.query, rule.project_id) : {};
    await this.checkRecipients(input.recipient_ids);
    const fields = Object.keys(input).filter((k) => input[k as keyof UpdateAlertInput] !== undefined);
    return transaction(this.db, async (trx) => {
      const row =
        fields.length === 0
          ? rule
          : await trx
              .updateTable('alert_rules')
              .set({
                ...(input.name !== undefined && { name: input.name }),
                ...(input.description !== undefined && { description: input.description }),
                ...(input.query !== undefined && { query: input.query, ...parsed }),
                ...(input.for_seconds !== undefined && { for_seconds: input.for_seconds }),
                ...(input.resolve_seconds !== undefined && { resolve_seconds: input.resolve_seconds }),
                ...(input.severity !== undefined && { severity: input.severity }),
                ...(input.channels !== undefined && { channels: input.channels }),
                ...(input.recipient_ids !== undefined && { recipient_ids: input.recipient_ids }),
                ...(input.is_enabled !== undefined && { is_enabled: input.is_enabled }),
              })
              .where('id', '=', rule.id)
              .returningAll()
              .executeTakeFirst();
      if (!row) throw notFound('alert rule');
      if (fields.length)
        await writeAudit(trx, {
          actor,
          action: 'alert_rule.update',
          resourceType: 'alert_rule',
          resourceId: rule.id,
          projectId: rule.project_id,
          detail: auditDetail(row, fields),
        });
      return alertRuleView(row);
    });
  }

  async silence(
    actor: Actor,
    rule: AlertRuleRow,
    until: Date | null,
    comment: string,
  ): Promise<AlertRuleView> {
    if (until && until.getTime() <= Date.now())
      throw unprocessable('the silence must end in the future', [
        { path: 'body.until', message: 'a time in the past' },
      ]).because(ALERT_REASONS.silenceInPast);
    return transaction(this.db, async (trx) => {
      const row = await trx
        .updateTable('alert_rules')
        .set({ silenced_until: until, silence_comment: until ? comment : '' })
        .where('id', '=', rule.id)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound('alert rule');
      await writeAudit(trx, {
        actor,
        action: until ? 'alert_rule.silence' : 'alert_rule.unsilence',
        resourceType: 'alert_rule',
        resourceId: rule.id,
        projectId: rule.project_id,
        detail: { name: rule.name.slice(0, 80), ...(until ? { until: until.toISOString(), comment } : {}) },
      });
      return alertRuleView(row);
    });
  }

  async remove(actor: Actor, rule: AlertRuleRow): Promise<void> {
    await transaction(this.db, async (trx) => {
      await trx.deleteFrom('alert_rules').where('id', '=', rule.id).execute();
      await writeAudit(trx, {
        actor,
        action: 'alert_rule.delete',
        resourceType: 'alert_rule',
        resourceId: rule.id,
        projectId: rule.project_id,
        detail: auditDetail(rule),
      });
    });
  }
}
