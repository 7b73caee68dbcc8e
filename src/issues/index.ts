export type * from './events.js';
export { createIssuesModule } from './module.js';
export { ISSUE_REASONS } from './reasons.js';
export { IssueCommentSchema, IssueSchema } from './schemas.js';
export {
  type CommentPageQuery,
  type CommentParentRef,
  type CommentTarget,
  type CommentView,
  type CreateIssueInput,
  type IssueFilter,
  IssuesService,
  type IssueView,
  type UpdateIssueInput,
  type UserActor,
} from './service.js';
