/**
 * Merge request events besides `mr.opened` and `mr.merged` (declared with the notify module, which
 * turns them into notifications). Emitted after the change has committed.
 */
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
    'mr.updated': MergeRequestUpdatedEvent;
    'mr.closed': MergeRequestStateEvent;
    'mr.reopened': MergeRequestReopenedEvent;
    'mr.reviewed': MergeRequestReviewedEvent;
  }
}
