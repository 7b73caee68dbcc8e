/**
 * Merge request events, emitted after the change has committed. `mr.commented` is emitted by the
 * issues module, which keeps the comments of issues and merge requests; it is still an MR event.
 */
export interface MergeRequestOpenedEvent {
  projectId: string;
  mergeRequestId: string;
  number: number;
  title: string;
  authorId: string;
  sourceBranch: string;
  targetBranch: string;
  headSha: string;
  /** Reviewers and the project owner; the author is never notified of their own action. */
  recipientIds: string[];
}

export interface MergeRequestMergedEvent {
  projectId: string;
  mergeRequestId: string;
  number: number;
  title: string;
  mergedBy: string;
  authorId: string;
  targetBranch: string;
  mergeSha: string;
  /** null when a push merged it (the MR's head arrived in the target outside the API). */
  strategy: 'merge' | 'squash' | 'fast_forward' | null;
}

export interface MergeRequestCommentedEvent {
  projectId: string;
  project: string;
  mergeRequestId: string;
  number: number;
  title: string;
  status: 'open' | 'merged' | 'closed';
  commentId: string;
  body: string;
  actorId: string;
  url: string;
}

export interface MergeRequestUpdatedEvent {
  projectId: string;
  mergeRequestId: string;
  number: number;
  title: string;
  sourceBranch: string;
  targetBranch: string;
  /** `push`: new commits on the source branch (an MR pipeline's `synchronized`); `edit`: title/body. */
  reason: 'push' | 'edit';
  /** Head of the source branch (unchanged by an edit). */
  headSha: string;
  previousHeadSha: string | null;
  /** Who pushed (or edited). */
  actorId: string;
}

export interface MergeRequestStateEvent {
  projectId: string;
  mergeRequestId: string;
  number: number;
  title: string;
  actorId: string;
}

/** Reopened: the head is the source branch's tip at reopening (it may have moved while closed). */
export interface MergeRequestReopenedEvent extends MergeRequestStateEvent {
  sourceBranch: string;
  targetBranch: string;
  headSha: string;
}

export interface MergeRequestReviewedEvent extends MergeRequestStateEvent {
  verdict: 'approve' | 'request_changes' | 'comment';
  authorId: string;
}

declare module '../core/events.js' {
  interface DomainEvents {
    'mr.opened': MergeRequestOpenedEvent;
    'mr.merged': MergeRequestMergedEvent;
    'mr.commented': MergeRequestCommentedEvent;
    'mr.updated': MergeRequestUpdatedEvent;
    'mr.closed': MergeRequestStateEvent;
    'mr.reopened': MergeRequestReopenedEvent;
    'mr.reviewed': MergeRequestReviewedEvent;
  }
}
