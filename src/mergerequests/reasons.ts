import { declareReasons } from '../core/errors.js';

/** Why a merge request operation is refused (`error.reason`); merge blockers use the same names. */
export const MR_REASONS = declareReasons('mr', {
  projectArchived: ['mr.project_archived', 'the project is archived: nothing is opened or merged'],
  alreadyOpen: ['mr.already_open', 'a merge request for this source and target is already open'],
  notOpen: ['mr.not_open', 'the merge request is merged or closed'],
  alreadyMerged: ['mr.already_merged', 'a merged merge request cannot be closed or reopened'],
  sourceBranchMissing: ['mr.source_branch_missing', 'the source branch no longer exists'],
  targetBranchMissing: ['mr.target_branch_missing', 'the target branch no longer exists'],
  headChanged: ['mr.head_changed', 'the source branch moved away from expected_head_sha'],
  approvalsRequired: ['mr.approvals_required', 'the target branch needs more approvals of the current head'],
  changesRequested: ['mr.changes_requested', 'a reviewer requests changes on the current head'],
  pipelineRequired: [
    'mr.pipeline_required',
    'the target branch needs a successful pipeline; the head has none',
  ],
  pipelinePending: [
    'mr.pipeline_pending',
    'the head pipeline required by the target branch has not finished',
  ],
  pipelineFailed: ['mr.pipeline_failed', 'the head pipeline required by the target branch did not succeed'],
  checkFailed: [
    'mr.check_failed',
    'a check posted on the head failed (e.g. deploy/diff: a manifest does not render)',
  ],
  protectedBranch: ['mr.protected_branch', 'another rule of the protected target branch refuses the merge'],
  mergeConflict: ['mr.merge_conflict', 'source and target change the same lines (the files are listed)'],
  notFastForward: ['mr.not_fast_forward', 'fast_forward: the target has commits the source does not have'],
  nothingToMerge: ['mr.nothing_to_merge', 'the target already contains the changes of the source'],
  targetMoved: ['mr.target_moved', 'the target branch kept moving while merging (compare-and-swap lost)'],
  selfReview: ['mr.self_review', 'authors cannot approve or request changes on their own merge request'],
});
