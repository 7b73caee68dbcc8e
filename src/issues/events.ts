/**
 * Issue and comment events, emitted after the change has committed (a comment on a merge request is
 * the merge request module's `mr.commented`). The project webhook dispatcher forwards every
 * `issue.*` / `mr.*` event that carries a `projectId`, so payloads are self-contained: enough to act
 * on without calling back (number, title, status, who did it, where to find it).
 */
export interface IssueEventBase {
  projectId: string;
  /** `owner/name` of the project. */
  project: string;
  issueId: string;
  number: number;
  title: string;
  status: 'open' | 'closed';
  labels: string[];
  authorId: string;
  assigneeId: string | null;
  /** Who made the change. */
  actorId: string;
  /** API address of the issue. */
  url: string;
}

export interface IssueOpenedEvent extends IssueEventBase {
  body: string;
}

export interface IssueUpdatedEvent extends IssueEventBase {
  /** Changed fields among title, body, labels, assignee_id (status changes are issue.closed/reopened). */
  changes: ('title' | 'body' | 'labels' | 'assignee_id')[];
}

export type IssueStateEvent = IssueEventBase;

export interface IssueCommentedEvent extends IssueEventBase {
  commentId: string;
  /** The comment's raw markdown. */
  body: string;
}

/** Someone else was made the assignee (becomes a notification for them). */
export interface IssueAssignedEvent {
  projectId: string;
  issueId: string;
  number: number;
  title: string;
  assigneeId: string;
  assignedBy: string;
}

declare module '../core/events.js' {
  interface DomainEvents {
    'issue.opened': IssueOpenedEvent;
    'issue.updated': IssueUpdatedEvent;
    'issue.closed': IssueStateEvent;
    'issue.reopened': IssueStateEvent;
    'issue.commented': IssueCommentedEvent;
    'issue.assigned': IssueAssignedEvent;
  }
}
