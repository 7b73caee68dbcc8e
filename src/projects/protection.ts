import { globMatch } from '../core/glob.js';
import type { DbOrTx } from '../store/db.js';

/**
 * Branch protection has one owner (this module owns `protected_branches`) and one evaluation: the
 * merge API (mergerequests) and the push hook (git) both ask `ruleRestrictions`, so a rule means
 * the same thing whichever way a branch moves.
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

/** Who moves the branch: admins (`admin:users`) are exempt from push restrictions. */
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

/** What one rule forbids to one mover on the branches it matches. */
export function ruleRestrictions(
  rule: ProtectionRule,
  mover: Mover,
): { forcePush: boolean; deletion: boolean; directPush: boolean } {
  if (mover.admin) return { forcePush: false, deletion: false, directPush: false };
  // A rule that asks for approvals or a green pipeline is a promise that every change on the branch
  // went through them: a direct push would skip both, so it is refused like an unapproved merge.
  const gated = rule.required_approvals > 0 || rule.require_pipeline;
  return {
    forcePush: !rule.allow_force_push,
    deletion: !rule.allow_deletion,
    directPush: gated && !rule.allow_direct_push.includes(mover.userId),
  };
}

export interface BranchProtection {
  /** Some rule matches the branch. */
  protected: boolean;
  /** The strictest of the matching rules. */
  required_approvals: number;
  require_pipeline: boolean;
}

/** The merge side: what a merge into `branch` needs (the strictest of the matching rules). */
export function branchProtection(rules: ProtectionRule[], branch: string): BranchProtection {
  const matching = rules.filter((r) => globMatch(r.pattern, branch));
  return {
    protected: matching.length > 0,
    required_approvals: Math.max(0, ...matching.map((r) => r.required_approvals)),
    require_pipeline: matching.some((r) => r.require_pipeline),
  };
}

/**
 * The push side, as ref globs for the pre-receive hook (its shell `case` matches exactly like
 * `globMatch`, see core/glob.ts). The default branch is never force-pushed or deleted by anyone
 * but an admin, rule or not.
 */
export function pushPolicy(
  rules: ProtectionRule[],
  defaultBranch: string,
  mover: Mover,
): { noForce: string[]; noDelete: string[]; noDirectPush: string[] } {
  if (mover.admin) return { noForce: [], noDelete: [], noDirectPush: [] };
  const ref = (pattern: string) => `refs/heads/${pattern}`;
  const noForce = [ref(defaultBranch)];
  const noDelete = [ref(defaultBranch)];
  const noDirectPush: string[] = [];
  for (const rule of rules) {
    const r = ruleRestrictions(rule, mover);
    if (r.forcePush) noForce.push(ref(rule.pattern));
    if (r.deletion) noDelete.push(ref(rule.pattern));
    if (r.directPush) noDirectPush.push(ref(rule.pattern));
  }
  return { noForce, noDelete, noDirectPush };
}
