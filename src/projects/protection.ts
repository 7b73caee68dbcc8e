import { globMatch } from '../core/glob.js';
import type { DbOrTx } from '../store/db.js';

/**
 * Branch protection has one owner (this module owns `protected_branches`) and one evaluation,
 * `evaluateProtection`: the merge API (mergerequests) and the push hook (git, through `pushPolicy`)
 * both ask it, so a rule means the same thing whichever way a branch moves.
 */
export interface ProtectionRule {
  pattern: string;
  allow_force_push: boolean;
  allow_deletion: boolean;
  required_approvals: number;
  require_pipeline: boolean;
  /** User ids who may push directly although the rule asks for review or a pipeline. */
  allow_direct_push: string[];
}

/** Who moves the branch: admins (`admin:users`) are exempt from push restrictions (not from merge rules). */
export interface Mover {
  userId: string;
  admin: boolean;
}

export async function loadProtectionRules(db: DbOrTx, projectId: string): Promise<ProtectionRule[]> {
  const rows = await db
    .selectFrom('protected_branches')
    .select([
      'pattern',
      'allow_force_push',
      'allow_deletion',
      'required_approvals',
      'require_pipeline',
      'allow_direct_push',
    ])
    .where('project_id', '=', projectId)
    .orderBy('pattern')
    .execute();
  return rows.map((r) => ({ ...r, allow_direct_push: [...(r.allow_direct_push ?? [])] }));
}

/** How the branch moves: a fast-forward push, a forced push, a deletion, or a merge through the API. */
export type ProtectionKind = 'push' | 'force' | 'delete' | 'merge';

export interface ProtectionRequest {
  branch: string;
  kind: ProtectionKind;
  /** The mover; absent when only the merge rules are asked (they do not depend on who merges). */
  actor?: Mover;
  /** The project's default branch: never force-pushed or deleted by anyone but an admin, rule or not. */
  defaultBranch?: string;
  /** Merges: approvals of the current head by others than the author. */
  approvals?: number;
  /** Merges: who requests changes on the current head. */
  changesRequestedBy?: string[];
  /** Merges: status of the newest pipeline of the head, null when there is none. */
  pipelineStatus?: string | null;
}

/** One thing protection refuses; the caller turns `rule` into its own refusal reason. */
export interface ProtectionBlocker {
  rule: 'approvals' | 'changes_requested' | 'pipeline' | 'direct_push' | 'force_push' | 'deletion';
  /** The pattern of the rule that asks for it (the default branch's name for its built-in guard). */
  pattern: string;
  message: string;
  required?: number;
  given?: number;
  pipeline_status?: string | null;
  changes_requested_by?: string[];
}

export interface ProtectionVerdict {
  /** Patterns of the rules matching the branch. */
  matched: string[];
  /** The strictest of the matching rules. */
  required_approvals: number;
  require_pipeline: boolean;
  blockers: ProtectionBlocker[];
}

const BLOCKER_ORDER: ProtectionBlocker['rule'][] = [
  'force_push',
  'deletion',
  'direct_push',
  'approvals',
  'changes_requested',
  'pipeline',
];

/** What one rule refuses to one request; the branch is assumed to match the rule. */
function ruleBlockers(rule: ProtectionRule, req: Omit<ProtectionRequest, 'branch'>): ProtectionBlocker[] {
  const { pattern } = rule;
  if (req.kind === 'merge') {
    const out: ProtectionBlocker[] = [];
    const given = req.approvals ?? 0;
    if (given < rule.required_approvals) {
      out.push({
        rule: 'approvals',
        pattern,
        message: `requires ${rule.required_approvals} approval(s) of the current head; it has ${given}`,
        required: rule.required_approvals,
        given,
      });
    }
    const requested = req.changesRequestedBy ?? [];
    if (requested.length > 0) {
      out.push({
        rule: 'changes_requested',
        pattern,
        message: `changes requested by ${requested.join(', ')}`,
        changes_requested_by: requested,
      });
    }
    if (rule.require_pipeline && req.pipelineStatus !== 'success') {
      out.push({
        rule: 'pipeline',
        pattern,
        message: `requires a successful pipeline; latest: ${req.pipelineStatus ?? 'none'}`,
        pipeline_status: req.pipelineStatus ?? null,
      });
    }
    return out;
  }
  if (req.actor?.admin) return [];
  if (req.kind === 'force' && !rule.allow_force_push)
    return [{ rule: 'force_push', pattern, message: `force pushes to ${pattern} are not allowed` }];
  if (req.kind === 'delete' && !rule.allow_deletion)
    return [{ rule: 'deletion', pattern, message: `${pattern} may not be deleted` }];
  // A rule that asks for approvals or a green pipeline is a promise that every change on the branch
  // went through them: a direct push would skip both, so it is refused like an unapproved merge.
  const gated = rule.required_approvals > 0 || rule.require_pipeline;
  if (req.kind === 'push' && gated && !(req.actor && rule.allow_direct_push.includes(req.actor.userId)))
    return [{ rule: 'direct_push', pattern, message: `changes to ${pattern} go through a merge request` }];
  return [];
}

/**
 * THE evaluation of branch protection: what the rules matching `req.branch` refuse to this way of
 * moving it. Merges get one blocker per requirement, from the strictest rule asking it.
 */
export function evaluateProtection(rules: ProtectionRule[], req: ProtectionRequest): ProtectionVerdict {
  const matching = rules.filter((r) => globMatch(r.pattern, req.branch));
  const blockers: ProtectionBlocker[] = [];
  if (
    req.branch === req.defaultBranch &&
    !req.actor?.admin &&
    (req.kind === 'force' || req.kind === 'delete')
  ) {
    blockers.push(
      req.kind === 'force'
        ? { rule: 'force_push', pattern: req.branch, message: 'the default branch is never force-pushed' }
        : { rule: 'deletion', pattern: req.branch, message: 'the default branch may not be deleted' },
    );
  }
  for (const rule of matching) {
    for (const b of ruleBlockers(rule, req)) {
      const same = blockers.findIndex((x) => x.rule === b.rule);
      if (same === -1) blockers.push(b);
      else if ((b.required ?? 0) > (blockers[same]!.required ?? 0)) blockers[same] = b;
    }
  }
  // A fixed order, so the first blocker (what a merge answers with) does not depend on rule order.
  blockers.sort((a, b) => BLOCKER_ORDER.indexOf(a.rule) - BLOCKER_ORDER.indexOf(b.rule));
  return {
    matched: matching.map((r) => r.pattern),
    required_approvals: Math.max(0, ...matching.map((r) => r.required_approvals)),
    require_pipeline: matching.some((r) => r.require_pipeline),
    blockers,
  };
}

/**
 * The push side, as ref globs for the pre-receive hook (its shell `case` matches exactly like
 * `globMatch`, see core/glob.ts): for each rule, whether `evaluateProtection` refuses each kind of
 * push on the branches it matches. protection.test.ts checks both agree branch by branch.
 */
export function pushPolicy(
  rules: ProtectionRule[],
  defaultBranch: string,
  mover: Mover,
): { noForce: string[]; noDelete: string[]; noDirectPush: string[] } {
  const ref = (pattern: string) => `refs/heads/${pattern}`;
  const refuses = (r: ProtectionRule[], req: ProtectionRequest) =>
    evaluateProtection(r, { ...req, actor: mover }).blockers.length > 0;
  const noForce: string[] = [];
  const noDelete: string[] = [];
  const noDirectPush: string[] = [];
  if (refuses([], { branch: defaultBranch, kind: 'force', defaultBranch })) noForce.push(ref(defaultBranch));
  if (refuses([], { branch: defaultBranch, kind: 'delete', defaultBranch }))
    noDelete.push(ref(defaultBranch));
  for (const rule of rules) {
    // The rule alone, asked for a branch it matches by definition (its pattern as a branch name
    // would not match a class like `v[0-9]*`); the hook then matches the pattern itself.
    const alone = [{ ...rule, pattern: '*' }];
    if (refuses(alone, { branch: rule.pattern, kind: 'force' })) noForce.push(ref(rule.pattern));
    if (refuses(alone, { branch: rule.pattern, kind: 'delete' })) noDelete.push(ref(rule.pattern));
    if (refuses(alone, { branch: rule.pattern, kind: 'push' })) noDirectPush.push(ref(rule.pattern));
  }
  return { noForce, noDelete, noDirectPush };
}
