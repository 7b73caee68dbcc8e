import { describe, expect, it } from 'vitest';
import { globMatch } from '../core/glob.js';
import { branchProtection, type ProtectionRule, pushPolicy, ruleRestrictions } from './protection.js';

const rule = (over: Partial<ProtectionRule> & { pattern: string }): ProtectionRule => ({
  allow_force_push: false,
  allow_deletion: false,
  required_approvals: 0,
  require_pipeline: false,
  allow_direct_push: [],
  ...over,
});

const writer = { userId: 'u-writer', admin: false };
const releaser = { userId: 'u-releaser', admin: false };
const admin = { userId: 'u-admin', admin: true };

describe('branch protection: one evaluation for pushes and merges', () => {
  const rules = [
    rule({ pattern: 'main', required_approvals: 1 }),
    rule({ pattern: 'release/*', require_pipeline: true, allow_direct_push: ['u-releaser'] }),
    rule({ pattern: 'scratch/*', allow_force_push: true, allow_deletion: true }),
  ];

  it('a rule asking for approvals or a pipeline refuses direct pushes, except to admins and allow_direct_push', () => {
    expect(ruleRestrictions(rules[0]!, writer)).toEqual({
      forcePush: true,
      deletion: true,
      directPush: true,
    });
    expect(ruleRestrictions(rules[1]!, writer).directPush).toBe(true);
    expect(ruleRestrictions(rules[1]!, releaser)).toEqual({
      forcePush: true,
      deletion: true,
      directPush: false,
    });
    expect(ruleRestrictions(rules[2]!, writer)).toEqual({
      forcePush: false,
      deletion: false,
      directPush: false,
    });
    expect(ruleRestrictions(rules[0]!, admin)).toEqual({
      forcePush: false,
      deletion: false,
      directPush: false,
    });
  });

  it('the hook patterns say for every branch what the per-rule evaluation says', () => {
    const policy = pushPolicy(rules, 'main', writer);
    const refused = (patterns: string[], branch: string) =>
      patterns.some((p) => globMatch(p, `refs/heads/${branch}`));
    for (const branch of ['main', 'release/1.0', 'release/a/b', 'scratch/x', 'feature', 'mainline']) {
      const matching = rules.filter((r) => globMatch(r.pattern, branch));
      const each = matching.map((r) => ruleRestrictions(r, writer));
      expect(refused(policy.noDirectPush, branch), branch).toBe(each.some((r) => r.directPush));
      // The default branch is never force-pushed or deleted by a non-admin, rule or not.
      expect(refused(policy.noForce, branch), branch).toBe(
        branch === 'main' || each.some((r) => r.forcePush),
      );
      expect(refused(policy.noDelete, branch), branch).toBe(
        branch === 'main' || each.some((r) => r.deletion),
      );
    }
    expect(pushPolicy(rules, 'main', admin)).toEqual({ noForce: [], noDelete: [], noDirectPush: [] });
  });

  it('a merge needs the strictest of the matching rules', () => {
    const strict = [...rules, rule({ pattern: 'release/1.*', required_approvals: 2 })];
    expect(branchProtection(strict, 'release/1.0')).toEqual({
      protected: true,
      required_approvals: 2,
      require_pipeline: true,
    });
    expect(branchProtection(strict, 'feature')).toEqual({
      protected: false,
      required_approvals: 0,
      require_pipeline: false,
    });
  });
});
