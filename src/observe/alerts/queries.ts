import type { Selectable } from 'kysely';
import { type Page, pageByTime } from '../../core/pagination.js';
import type { Db, DbOrTx } from '../../store/db.js';
import type { AlertRulesTable, Database } from '../../store/schema.js';
import type { AlertEventView, AlertListFilter, AlertRuleView } from './schemas.js';

export type AlertRuleRow = Selectable<AlertRulesTable>;
type AlertEventRow = Selectable<Database['alert_events']>;

export function alertRuleView(r: AlertRuleRow): AlertRuleView {
  return {
    id: r.id,
    project_id: r.project_id,
    name: r.name,
    description: r.description,
    query: r.query,
    condition: r.condition,
    threshold: r.threshold,
    for_seconds: r.for_seconds,
    resolve_seconds: r.resolve_seconds,
    severity: r.severity,
    channels: r.channels,
    recipient_ids: r.recipient_ids,
    is_enabled: r.is_enabled,
    state: r.state,
    pending_since: r.pending_since?.toISOString() ?? null,
    last_evaluated_at: r.last_evaluated_at,
    last_value: r.last_value,
    last_error: r.last_error,
    silenced_until: r.silenced_until?.toISOString() ?? null,
    silence_comment: r.silence_comment,
    created_by: r.created_by,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

export function alertEventView(r: AlertEventRow): AlertEventView {
  return {
    id: r.id,
    rule_id: r.rule_id,
    project_id: r.project_id,
    status: r.status,
    value: r.value,
    threshold: r.threshold,
    message: r.message,
    started_at: r.started_at,
    silenced: r.silenced,
    created_at: r.created_at,
  };
}

export async function findAlertRule(db: DbOrTx, id: string): Promise<AlertRuleRow | undefined> {
  return db.selectFrom('alert_rules').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listAlertRules(db: Db, f: AlertListFilter): Promise<Page<AlertRuleView>> {
  let q = db.selectFrom('alert_rules').selectAll();
  q = f.project_id ? q.where('project_id', '=', f.project_id) : q.where('project_id', 'is', null);
  if (f.state) q = q.where('state', '=', f.state);
  return pageByTime(q, { time: 'created_at', id: 'id' }, f, alertRuleView);
}

export async function listAlertEvents(
  db: Db,
  ruleId: string,
  page: { limit: number; cursor?: string | undefined },
): Promise<Page<AlertEventView>> {
  const q = db.selectFrom('alert_events').selectAll().where('rule_id', '=', ruleId);
  return pageByTime(q, { time: 'created_at', id: 'id' }, page, alertEventView);
}

/** The enabled rules, least recently evaluated first (a tick that runs out of time resumes there). */
export async function enabledAlertRules(db: Db): Promise<AlertRuleRow[]> {
  return db
    .selectFrom('alert_rules')
    .selectAll()
    .where('is_enabled', '=', true)
    .orderBy('last_evaluated_at', (o) => o.asc().nullsFirst())
    .execute();
}

/** Active users among the given ids (recipients of a rule's notifications). */
export async function activeUserIds(db: DbOrTx, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('users')
    .select('id')
    .where('id', 'in', [...new Set(ids)])
    .where('is_active', '=', true)
    .execute();
  return rows.map((r) => r.id);
}

export async function projectOwnerId(db: DbOrTx, projectId: string | null): Promise<string | null> {
  if (!projectId) return null;
  const row = await db
    .selectFrom('projects')
    .select('owner_id')
    .where('id', '=', projectId)
    .executeTakeFirst();
  return row?.owner_id ?? null;
}
