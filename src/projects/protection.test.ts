import { describe, expect, it } from 'vitest';
import { globMatch } from '../core/glob.js';
import { evaluateProtection, type ProtectionKind, type ProtectionRule, pushPolicy } from './protection.js';

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
    rule({ pattern: 'v[0-9]*' }),
  ];
  const refused = (branch: string, kind: ProtectionKind, actor = writer) =>
    evaluateProtection(rules, { branch, kind, actor, defaultBranch: 'main' }).blockers.map((b) => b.rule);

  it('a rule asking for approvals or a pipeline refuses direct pushes, except to admins and allow_direct_push', () => {
    expect(refused('main', 'push')).toEqual(['direct_push']);
    expect(refused('main', 'force')).toEqual(['force_push']);
    expect(refused('main', 'delete')).toEqual(['deletion']);
    expect(refused('release/1.0', 'push')).toEqual(['direct_push']);
    expect(refused('release/1.0', 'push', releaser)).toEqual([]);
    expect(refused('release/1.0', 'force', releaser)).toEqual(['force_push']);
    expect(refused('scratch/x', 'force')).toEqual([]);
    expect(refused('scratch/x', 'delete')).toEqual([]);
    expect(refused('v1', 'push')).toEqual([]);
    expect(refused('v1', 'delete')).toEqual(['deletion']);
    expect(refused('feature', 'force')).toEqual([]);
    for (const kind of ['push', 'force', 'delete'] as const) expect(refused('main', kind, admin)).toEqual([]);
  });

  it('the hook patterns say for every branch what evaluateProtection says', () => {
    const policy = pushPolicy(rules, 'main', writer);
    const hook = (patterns: string[], branch: string) =>
      patterns.some((p) => globMatch(p, `refs/heads/${branch}`));
    for (const branch of ['main', 'release/1.0', 'release/a/b', 'scratch/x', 'feature', 'mainline', 'v2']) {
      expect(hook(policy.noDirectPush, branch), branch).toBe(refused(branch, 'push').length > 0);
      expect(hook(policy.noForce, branch), branch).toBe(refused(branch, 'force').length > 0);
      expect(hook(policy.noDelete, branch), branch).toBe(refused(branch, 'delete').length > 0);
    }
    // The default branch is never force-pushed or deleted by a non-admin, rule or not.
    expect(pushPolicy([], 'trunk', writer)).toEqual({
      noForce: ['refs/heads/trunk'],
      noDelete: ['refs/heads/trunk'],
      noDirectPush: [],
    });
    expect(pushPolicy(rules, 'main', admin)).toEqual({ noForce: [], noDelete: [], noDirectPush: [] });
  });

  it('a merge needs the strictest of the matching rules, admins included', () => {
    const strict = [...rules, rule({ pattern: 'release/1.*', required_approvals: 2 })];
    const verdict = evaluateProtection(strict, {
      branch: 'release/1.0',
      kind: 'merge',
      actor: admin,
      approvals: 1,
      changesRequestedBy: ['rob'],
      pipelineStatus: 'failure',
    });
    expect(verdict).toMatchObject({ matched: ['release/*', 'release/1.*'], required_approvals: 2 });
    expect(verdict.require_pipeline).toBe(true);
    expect(verdict.blockers).toEqual([
      expect.objectContaining({ rule: 'approvals', pattern: 'release/1.*', required: 2, given: 1 }),
      expect.objectContaining({ rule: 'changes_requested', changes_requested_by: ['rob'] }),
      expect.objectContaining({ rule: 'pipeline', pipeline_status: 'failure' }),
    ]);
    expect(
      evaluateProtection(strict, {
        branch: 'release/1.0',
        kind: 'merge',
        approvals: 2,
        pipelineStatus: 'success',
      }).blockers,
    ).toEqual([]);
    expect(evaluateProtection(strict, { branch: 'feature', kind: 'merge' })).toEqual({
      matched: [],
      required_approvals: 0,
      require_pipeline: false,
      blockers: [],
    });
  });
});
