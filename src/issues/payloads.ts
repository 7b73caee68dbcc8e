import type { EventBus } from '../core/events.js';
import type { IssueEventBase } from './events.js';
import type { CommentTarget, IssueRow } from './queries.js';

/**
 * Event payloads and API addresses shared by the issue and comment use cases: payloads are
 * self-contained (webhooks forward them), so they carry the project, number and address.
 */
export class IssuePayloads {
  constructor(
    private readonly events: EventBus,
    private readonly publicUrl: string,
  ) {}

  url(projectId: string, target: CommentTarget, number: number): string {
    const segment = target === 'issue' ? 'issues' : 'merge-requests';
    return `${this.publicUrl}/api/projects/${projectId}/${segment}/${number}`;
  }

  base(row: IssueRow, actorId: string): IssueEventBase {
    return {
      projectId: row.project_id,
      project: `${row.project_owner}/${row.project_name}`,
      issueId: row.id,
      number: row.number,
      title: row.title,
      status: row.status,
      labels: row.labels,
      authorId: row.author_id,
      assigneeId: row.assignee_id,
      actorId,
      url: this.url(row.project_id, 'issue', row.number),
    };
  }

  /** Assigning someone else notifies them; assigning yourself does not. */
  emitAssigned(row: IssueRow, actorId: string): void {
    if (!row.assignee_id || row.assignee_id === actorId) return;
    this.events.emit('issue.assigned', {
      projectId: row.project_id,
      issueId: row.id,
      number: row.number,
      title: row.title,
      assigneeId: row.assignee_id,
      assignedBy: actorId,
    });
  }
}
