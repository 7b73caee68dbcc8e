import { declareReasons } from '../core/errors.js';

/** Why the issues module refuses (issues, and comments on issues and merge requests). */
export const ISSUE_REASONS = declareReasons('issue', {
  notAssignable: [
    'issue.not_assignable',
    'the assignee does not exist, is deactivated or cannot read the project (422)',
  ],
  invalidTransition: [
    'issue.invalid_transition',
    'the issue’s current status cannot become the requested one; the details carry the current status (409)',
  ],
  notCommentAuthor: ['issue.not_comment_author', 'only the comment’s author or an admin may change it (403)'],
});
