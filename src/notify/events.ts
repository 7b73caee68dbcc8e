/**
 * The domain events the notify module turns into notifications. The emitting modules (projects,
 * pipeline, deployer, agent, observe) only emit them after their transaction commits; recipients
 * are user ids, already resolved by the emitter (who triggered, who owns, who reviews).
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

export interface IssueAssignedEvent {
  projectId: string;
  issueId: string;
  number: number;
  title: string;
  assigneeId: string;
  assignedBy: string;
}

export interface PipelineFinishedEvent {
  projectId: string;
  pipelineId: string;
  /** The pipeline's final status, as in the API. */
  status: 'success' | 'failure' | 'cancelled';
  ref: string;
  /** Who pushed or started it; null for scheduled runs. */
  triggeredBy: string | null;
  ownerId: string;
}

export interface DeploymentChangedEvent {
  projectId: string;
  deploymentId: string;
  environment: string;
  status: string;
  deployedBy: string | null;
  ownerId: string;
}

export interface SessionFinishedEvent {
  projectId: string | null;
  sessionId: string;
  status: string;
  requestedBy: string;
}

export interface AlertEvent {
  projectId: string | null;
  ruleId: string;
  alertEventId: string;
  ruleName: string;
  message: string;
  /** The rule's recipients and the project owner. */
  recipientIds: string[];
}

declare module '../core/events.js' {
  interface DomainEvents {
    'mr.opened': MergeRequestOpenedEvent;
    'mr.merged': MergeRequestMergedEvent;
    'issue.assigned': IssueAssignedEvent;
    'pipeline.finished': PipelineFinishedEvent;
    'deployment.changed': DeploymentChangedEvent;
    'session.finished': SessionFinishedEvent;
    'alert.fired': AlertEvent;
    'alert.resolved': AlertEvent;
  }
}
