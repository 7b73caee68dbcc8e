import { conflict, type ErrorDetail } from '../core/errors.js';
import {
  evaluateProtection,
  loadProtectionRules,
  type ProjectRow,
  type ProtectionBlocker,
  type ProtectionVerdict,
} from '../projects/index.js';
import type { CheckViewer, MergeRequestCheck, MrContext } from './context.js';
import { branchSha, isAncestor, type MergeStrategy, mergeTree } from './git.js';
import { type Approvals, currentApprovals, type MrRow } from './queries.js';
import { MR_REASONS } from './reasons.js';

/** One rule a merge enforces that is not met: what the merge answers 409 with, and detail lists. */
export interface Blocker {
  reason: string;
  message: string;
  details: ErrorDetail[];
}

/** The 409 a merge answers with for a blocker. */
export function refusal(b: Blocker) {
  return conflict(b.message, b.details).because(b.reason);
}

export interface Mergeability {
  /** Empty when a merge with the strategy asked would be accepted now. */
  blockers: Blocker[];
  /** The head evaluated: the source branch's tip while open, the recorded head otherwise. */
  head: string | null;
  sourceTip: string | null;
  targetTip: string | null;
  /** What git says of merging head into the target (null unless open). */
  git: { conflicts: string[]; fast_forward_possible: boolean; reason: string | null } | null;
  protection: ProtectionVerdict;
  approvals: Approvals;
  pipeline: { pipeline_id: string; status: string } | null;
  /** Named checks posted on the head (the deployer's deploy/diff). */
  runs: MergeRequestCheck[];
}

function protectionBlocker(b: ProtectionBlocker, mr: MrRow, head: string | null): Blocker {
  switch (b.rule) {
    case 'approvals':
      return {
        reason: MR_REASONS.approvalsRequired,
        message: `branch ${mr.target_branch} ${b.message}`,
        details: [{ path: 'approvals', message: `${b.given}/${b.required}` }],
      };
    case 'changes_requested':
      return {
        reason: MR_REASONS.changesRequested,
        message: b.message,
        details: [{ path: 'reviews', message: 'changes requested' }],
      };
    case 'pipeline': {
      const status = b.pipeline_status ?? null;
      return {
        reason:
          status === null
            ? MR_REASONS.pipelineRequired
            : status === 'pending' || status === 'running'
              ? MR_REASONS.pipelinePending
              : MR_REASONS.pipelineFailed,
        message: `branch ${mr.target_branch} requires a successful pipeline for ${(head ?? '').slice(0, 12)}; latest: ${status ?? 'none'}`,
        details: [{ path: 'checks', message: status ?? 'none' }],
      };
    }
    default:
      return {
        reason: MR_REASONS.protectedBranch,
        message: `branch ${mr.target_branch}: ${b.message}`,
        details: [{ path: 'protection', message: b.pattern }],
      };
  }
}

/**
 * THE list of what stands between a merge request and its merge, in the order the merge checks
 * them: the detail reports it (`mergeable`, `blockers`) and `merge()` refuses with the first one,
 * so the two cannot disagree. Permission is not a blocker: the route answers 403 before this; the
 * merge rules do not depend on who merges (admins included), so neither does the list.
 */
export async function checkMergeable(
  c: MrContext,
  project: ProjectRow,
  mr: MrRow,
  opts: { strategy?: MergeStrategy; expectedHeadSha?: string; viewer?: CheckViewer } = {},
): Promise<Mergeability> {
  const strategy = opts.strategy ?? 'merge';
  const dir = c.projects.repoDir(project);
  const open = mr.status === 'open';
  const [sourceTip, targetTip] = await Promise.all([
    branchSha(dir, mr.source_branch),
    branchSha(dir, mr.target_branch),
  ]);
  const head = open ? (sourceTip ?? mr.head_sha) : mr.head_sha;
  const [approvals, latest, rules, runs] = await Promise.all([
    currentApprovals(c.db, mr.id, mr.author_id, head),
    head ? c.checks.latestForCommit(project.id, head) : Promise.resolve(null),
    loadProtectionRules(c.db, project.id),
    head && c.checks.forMergeRequest
      ? c.checks.forMergeRequest(mr.id, head, opts.viewer)
      : Promise.resolve([]),
  ]);
  const pipeline = latest ? { pipeline_id: latest.id, status: latest.status } : null;
  const protection = evaluateProtection(rules, {
    branch: mr.target_branch,
    kind: 'merge',
    approvals: approvals.approved_by.length,
    changesRequestedBy: approvals.changes_requested_by,
    pipelineStatus: pipeline?.status ?? null,
  });

  const blockers: Blocker[] = [];
  if (!project.is_active) {
    blockers.push({ reason: MR_REASONS.projectArchived, message: 'the project is archived', details: [] });
  }
  if (!open) {
    blockers.push({
      reason: MR_REASONS.notOpen,
      message: `the merge request is ${mr.status}`,
      details: [{ path: 'status', message: mr.status }],
    });
  }
  let git: Mergeability['git'] = null;
  if (open) {
    if (!sourceTip) {
      blockers.push({
        reason: MR_REASONS.sourceBranchMissing,
        message: `source branch ${mr.source_branch} no longer exists`,
        details: [],
      });
    } else if (opts.expectedHeadSha && opts.expectedHeadSha !== sourceTip) {
      blockers.push({
        reason: MR_REASONS.headChanged,
        message: 'the source branch moved since you reviewed it',
        details: [{ path: 'body.expected_head_sha', message: `head is ${sourceTip}` }],
      });
    }
    blockers.push(...protection.blockers.map((b) => protectionBlocker(b, mr, head)));
    for (const run of runs.filter((r) => r.conclusion === 'failure')) {
      blockers.push({
        reason: MR_REASONS.checkFailed,
        message: `check ${run.name} failed: ${run.summary}`,
        details: [{ path: `checks.runs.${run.name}`, message: run.summary }],
      });
    }
    git = await gitMergeability(dir, sourceTip, targetTip);
    if (!targetTip) {
      blockers.push({
        reason: MR_REASONS.targetBranchMissing,
        message: `target branch ${mr.target_branch} no longer exists`,
        details: [],
      });
    } else if (sourceTip) {
      if (git.reason === 'nothing to merge') {
        blockers.push({
          reason: MR_REASONS.nothingToMerge,
          message: 'nothing to merge: already merged',
          details: [],
        });
      } else if (strategy === 'fast_forward') {
        if (!git.fast_forward_possible) blockers.push(notFastForward());
      } else if (git.conflicts.length > 0) {
        blockers.push(mergeConflict(git.conflicts));
      }
    }
  }
  return { blockers, head, sourceTip, targetTip, git, protection, approvals, pipeline, runs };
}

export function mergeConflict(files: string[]): Blocker {
  return {
    reason: MR_REASONS.mergeConflict,
    message: `merge conflicts in ${files.join(', ')}`,
    details: files.map((f) => ({ path: f, message: 'conflict' })),
  };
}

export function notFastForward(): Blocker {
  return {
    reason: MR_REASONS.notFastForward,
    message: 'cannot fast-forward: the target branch has commits the source branch does not have',
    details: [],
  };
}

async function gitMergeability(
  dir: string,
  sourceTip: string | null,
  targetTip: string | null,
): Promise<NonNullable<Mergeability['git']>> {
  if (!sourceTip) return { conflicts: [], fast_forward_possible: false, reason: 'source branch deleted' };
  if (!targetTip) return { conflicts: [], fast_forward_possible: false, reason: 'target branch deleted' };
  if (await isAncestor(dir, sourceTip, targetTip))
    return { conflicts: [], fast_forward_possible: false, reason: 'nothing to merge' };
  const [{ conflicts }, ff] = await Promise.all([
    mergeTree(dir, targetTip, sourceTip),
    isAncestor(dir, targetTip, sourceTip),
  ]);
  return { conflicts, fast_forward_possible: ff, reason: conflicts.length > 0 ? 'conflicts' : null };
}
