export { pathSchema, RepoBrowser, refSchema } from './browse.js';
export type { PushReceivedEvent } from './events.js';
export { createGitModule } from './module.js';
export { GitError, gitEnv, killTree, runGit } from './run.js';
