import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { EventBus } from '../../core/events.js';
import { type Db, transaction } from '../../store/db.js';
import type { AlertEvent } from '../events.js';
import { type AlertExpr, compileAlert, conditionHolds, parseAlert, QueryError } from '../query-lang/index.js';
import { type AlertRuleRow, activeUserIds, enabledAlertRules, projectOwnerId } from './queries.js';
import { decide } from './state.js';
import { type Bookkeeping, recordEvaluations, transitionAlertRule } from './transitions.js';

export interface EvaluatorOptions {
  /** Rule queries run at once. */
  concurrency: number;
  /** A rule whose query runs longer is recorded as failed (last_error) for this tick. */
  queryTimeoutMs: number;
}

interface RuleOutcome {
  value: number | null;
  error: string | null;
  transitioned: boolean;
  clearSince?: Date | null;
}

export interface TickResult {
  evaluated: number;
  failed: number;
  transitions: number;
}

const describeValue = (v: number | null) => (v === null ? 'no data' : String(Number(v.toPrecision(6))));

function eventMessage(
  rule: AlertRuleRow,
  expr: AlertExpr,
  status: 'firing' | 'resolved',
  value: number | null,
) {
  if (expr.kind === 'absent')
    return status === 'firing'
      ? `${rule.name}: no data for ${rule.query}`
      : `${rule.name}: data arrives again for ${rule.query}`;
  return `${rule.name}: ${rule.query} (value ${describeValue(value)}) ${status === 'firing' ? 'holds' : 'no longer holds'}`;
}

/**
 * One evaluation pass over every enabled rule (run by the scheduler on one instance per tick):
 * each rule's compiled query, the state machine (state.ts), the transitions with their alert_events
 * rows (transitions.ts), then `alert.fired` / `alert.resolved` after each commit unless the rule is
 * silenced.
 */
export class AlertEvaluator {
  /** Parsed expressions by query text (rules rarely change; ticks are frequent). */
  private readonly parsed = new Map<string, AlertExpr | QueryError>();

  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly log: Logger,
    private readonly options: EvaluatorOptions,
  ) {}

  private parse(query: string): AlertExpr | QueryError {
    let p = this.parsed.get(query);
    if (!p) {
      try {
        p = parseAlert(query);
      } catch (err) {
        if (!(err instanceof QueryError)) throw err;
        p = err;
      }
      if (this.parsed.size > 10_000) this.parsed.clear();
      this.parsed.set(query, p);
    }
    return p;
  }

  async tick(signal?: AbortSignal, at: Date = new Date()): Promise<TickResult> {
    const rules = await enabledAlertRules(this.db);
    const bookkeeping: Bookkeeping[] = [];
    const result: TickResult = { evaluated: 0, failed: 0, transitions: 0 };
    let next = 0;
    const worker = async () => {
      while (next < rules.length && !signal?.aborted) {
        const rule = rules[next++] as AlertRuleRow;
        const outcome = await this.evaluateRule(rule, at).catch((err: unknown) => {
          this.log.warn({ err, ruleId: rule.id }, 'alert rule evaluation failed');
          const failed: RuleOutcome = {
            value: null,
            error: err instanceof Error ? err.message : String(err),
            transitioned: false,
          };
          return failed;
        });
        result.evaluated++;
        if (outcome.error) result.failed++;
        if (outcome.transitioned) result.transitions++;
        else
          bookkeeping.push({
            id: rule.id,
            value: outcome.value,
            error: outcome.error,
            clearSince: outcome.clearSince,
          });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.options.concurrency) }, worker));
    await recordEvaluations(this.db, at, bookkeeping);
    return result;
  }

  private async evaluateRule(rule: AlertRuleRow, at: Date): Promise<RuleOutcome> {
    const expr = this.parse(rule.query);
    if (expr instanceof QueryError) return { value: null, error: expr.message, transitioned: false };
    const query = compileAlert(expr, { projectId: rule.project_id }, at);
    const value = await transaction(this.db, async (trx) => {
      // A pathological query (a regular expression over millions of lines) must not hold the tick.
      await sql`select set_config('statement_timeout', ${String(this.options.queryTimeoutMs)}, true)`.execute(
        trx,
      );
      const row = (await query.execute(trx)).rows[0];
      return row?.value === null || row?.value === undefined ? null : Number(row.value);
    });
    const decision = decide(
      {
        state: rule.state,
        pendingSince: rule.pending_since,
        clearSince: rule.clear_since,
        forSeconds: rule.for_seconds,
        resolveSeconds: rule.resolve_seconds,
      },
      conditionHolds(expr, value),
      at,
    );
    if (decision.kind === 'none') return { value, error: null, transitioned: false };
    if (decision.kind === 'bookkeeping')
      return { value, error: null, transitioned: false, clearSince: decision.clearSince };

    const silenced = rule.silenced_until !== null && rule.silenced_until.getTime() > at.getTime();
    const status = decision.to === 'firing' || decision.to === 'resolved' ? decision.to : null;
    const message = status ? eventMessage(rule, expr, status, value) : '';
    const done = await transaction(this.db, async (trx) => {
      const r = await transitionAlertRule(trx, rule, decision, { at, value, message, silenced });
      if (!r?.event || silenced) return { r, announce: null };
      const wantsPeople = rule.channels.includes('in_app') || rule.channels.includes('email');
      const owner = await projectOwnerId(trx, rule.project_id);
      const recipients = wantsPeople
        ? await activeUserIds(
            trx,
            [rule.created_by, owner, ...rule.recipient_ids].filter((id): id is string => !!id),
          )
        : [];
      const announce: AlertEvent = {
        projectId: rule.project_id,
        ruleId: rule.id,
        alertEventId: r.event.id,
        ruleName: rule.name,
        message,
        recipientIds: recipients,
      };
      return { r, announce: { name: r.event.status, payload: announce } };
    });
    // Emitted after the commit: subscribers (notify, webhooks) read what was written.
    if (done.announce)
      this.events.emit(
        done.announce.name === 'firing' ? 'alert.fired' : 'alert.resolved',
        done.announce.payload,
      );
    return { value, error: null, transitioned: done.r !== null };
  }
}
