import type { AlertRuleState } from '../../store/schema.js';

/**
 * The evaluation state machine, as a pure function of the rule's state and one evaluation:
 *
 *   ok/resolved --holds--> pending (for_seconds > 0) or firing (for_seconds = 0)
 *   pending --holds for for_seconds--> firing          pending --clear--> ok
 *   firing --clear for resolve_seconds without interruption--> resolved
 *
 * Anti-flapping is the minimum resolve time: a firing alert whose condition clears and comes back
 * within `resolve_seconds` stays one episode (one firing row, one resolved row, one notification
 * each), so a condition flapping every tick notifies once per `for_seconds + resolve_seconds` at most.
 */
export interface RuleState {
  state: AlertRuleState;
  pendingSince: Date | null;
  clearSince: Date | null;
  forSeconds: number;
  resolveSeconds: number;
}

export type Decision =
  | { kind: 'none' }
  /** Only the non-status bookkeeping changes (clear_since of a firing rule). */
  | { kind: 'bookkeeping'; clearSince: Date | null }
  | { kind: 'transition'; to: 'pending' | 'ok'; pendingSince: Date | null }
  /** A transition that writes an alert_events row; `startedAt` identifies the episode. */
  | { kind: 'transition'; to: 'firing' | 'resolved'; startedAt: Date };

const elapsed = (since: Date, now: Date) => (now.getTime() - since.getTime()) / 1000;

export function decide(rule: RuleState, holds: boolean, now: Date): Decision {
  switch (rule.state) {
    case 'ok':
    case 'resolved':
      if (!holds) return { kind: 'none' };
      return rule.forSeconds === 0
        ? { kind: 'transition', to: 'firing', startedAt: now }
        : { kind: 'transition', to: 'pending', pendingSince: now };
    case 'pending': {
      if (!holds) return { kind: 'transition', to: 'ok', pendingSince: null };
      const since = rule.pendingSince ?? now;
      return elapsed(since, now) >= rule.forSeconds
        ? { kind: 'transition', to: 'firing', startedAt: since }
        : { kind: 'none' };
    }
    case 'firing': {
      const startedAt = rule.pendingSince ?? now;
      if (holds) return rule.clearSince ? { kind: 'bookkeeping', clearSince: null } : { kind: 'none' };
      const clearSince = rule.clearSince ?? now;
      if (elapsed(clearSince, now) >= rule.resolveSeconds)
        return { kind: 'transition', to: 'resolved', startedAt };
      return rule.clearSince ? { kind: 'none' } : { kind: 'bookkeeping', clearSince };
    }
  }
}
