export { GitError, gitEnv, killTree, runGit } from '../core/git.js';
export { pathSchema, RepoBrowser, refSchema } from './browse.js';
export type { PushReceivedEvent } from './events.js';
export { createGitModule } from './module.js';
export { PUSH_REPLY_WAIT_MS, type PushReplies, pushReplies } from './push-replies.js';
