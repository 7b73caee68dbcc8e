import { sql } from 'kysely';
import type { DbOrTx } from '../../store/db.js';
import { type AlertRuleState, alertRuleStateTransitions, transitionSources } from '../../store/schema.js';
import type { AlertRuleRow } from './queries.js';
import type { Decision } from './state.js';

/**
 * The one writer of `alert_rules.state` (and of the episode columns `pending_since`/`clear_since`
 * that go with it): named transitions checked against `alertRuleStateTransitions`, each a guarded
 * UPDATE on the state the evaluation started from, so a second evaluator that raced this one (or a
 * stale read) changes nothing. Firing and resolving write their `alert_events` row in the same
 * transaction; the row's (rule, episode start, status) key makes a duplicate impossible even then.
 * The evaluator is the platform itself: alert_events is the record of these transitions, so they are
 * not also audited (rule changes by people are, in service.ts).
 */
const SOURCES: { [T in AlertRuleState]: readonly AlertRuleState[] } = {
  pending: transitionSources(alertRuleStateTransitions, 'alert pending', ['ok', 'resolved'], 'pending'),
  ok: transitionSources(alertRuleStateTransitions, 'alert back to ok', ['pending'], 'ok'),
  firing: transitionSources(
    alertRuleStateTransitions,
    'alert fires',
    ['ok', 'pending', 'resolved'],
    'firing',
  ),
  resolved: transitionSources(alertRuleStateTransitions, 'alert resolves', ['firing'], 'resolved'),
};

export interface Evaluation {
  at: Date;
  value: number | null;
  /** The event message (firing / resolved). */
  message: string;
  silenced: boolean;
}

export interface TransitionResult {
  rule: AlertRuleRow;
  event: { id: string; status: 'firing' | 'resolved'; started_at: Date } | null;
}

/** Applies a transition decision, in the caller's transaction; null when the rule moved meanwhile. */
export async function transitionAlertRule(
  trx: DbOrTx,
  rule: AlertRuleRow,
  decision: Decision & { kind: 'transition' },
  evaluation: Evaluation,
): Promise<TransitionResult | null> {
  const sources = SOURCES[decision.to];
  if (!sources.includes(rule.state))
    throw new Error(`alert rule: ${rule.state} → ${decision.to} is not allowed`);
  const episode =
    decision.to === 'firing'
      ? { pending_since: decision.startedAt, clear_since: null }
      : decision.to === 'pending'
        ? { pending_since: decision.pendingSince, clear_since: null }
        : { pending_since: null, clear_since: null };
  const updated = await trx
    .updateTable('alert_rules')
    .set({
      state: decision.to,
      ...episode,
      last_value: evaluation.value,
      last_evaluated_at: evaluation.at,
      last_error: null,
    })
    .where('id', '=', rule.id)
    .where('state', '=', rule.state)
    .where('state', 'in', sources)
    .returningAll()
    .executeTakeFirst();
  if (!updated) return null;
  if (decision.to !== 'firing' && decision.to !== 'resolved') return { rule: updated, event: null };
  const event = await trx
    .insertInto('alert_events')
    .values({
      rule_id: rule.id,
      project_id: rule.project_id,
      status: decision.to,
      value: evaluation.value,
      threshold: rule.threshold,
      message: evaluation.message,
      started_at: decision.startedAt,
      silenced: evaluation.silenced,
      created_at: evaluation.at,
    })
    .onConflict((oc) => oc.columns(['rule_id', 'started_at', 'status']).doNothing())
    .returning(['id', 'status', 'started_at'])
    .executeTakeFirst();
  return { rule: updated, event: event ?? null };
}

export interface Bookkeeping {
  id: string;
  value: number | null;
  error: string | null;
  /** undefined: unchanged; null or a time: the new clear_since of a firing rule. */
  clearSince?: Date | null;
}

/**
 * The evaluation results that are not transitions (value, time, error; a firing rule's clear
 * clock), for a whole tick in one statement.
 */
export async function recordEvaluations(db: DbOrTx, at: Date, rows: Bookkeeping[]): Promise<void> {
  if (rows.length === 0) return;
  const payload = JSON.stringify(
    rows.map((r) => ({
      id: r.id,
      value: r.value,
      error: r.error,
      set_clear: r.clearSince !== undefined,
      clear_since: r.clearSince ? r.clearSince.toISOString() : null,
    })),
  );
  await sql`
    update alert_rules r set
      last_value = v.value,
      last_error = v.error,
      last_evaluated_at = ${at.toISOString()}::timestamptz,
      clear_since = case when v.set_clear and r.state = 'firing' then v.clear_since else r.clear_since end
    from jsonb_to_recordset(${payload}::jsonb) as v(id uuid, value float8, error text, set_clear boolean, clear_since timestamptz)
    where r.id = v.id`.execute(db);
}
