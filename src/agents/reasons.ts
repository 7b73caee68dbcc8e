import { declareReasons } from '../core/errors.js';

/** Why the agents module refuses. */
export const AGENT_REASONS = declareReasons('agent', {
  concurrencyLimit: [
    'agent.concurrency_limit',
    'the cap on running sessions (of this project or of the platform) is reached (429)',
  ],
  rateLimited: ['agent.rate_limited', 'you started too many sessions in the last hour (429)'],
  agentCannotStart: ['agent.agent_cannot_start', 'an agent identity cannot start sessions (403)'],
  permissionNotHeld: [
    'agent.permission_not_held',
    'a permission to delegate is not one you hold on this project (403)',
  ],
  unknownProvider: [
    'agent.unknown_provider',
    'no such provider (claude-code, or one an admin defined) (422)',
  ],
  notRunning: [
    'agent.not_running',
    'the session has ended (or not started yet); details carry its status (409)',
  ],
  noStdin: ['agent.no_stdin', 'this session’s runner cannot take messages (kubernetes pods) (409)'],
  branchInvalid: ['agent.branch_invalid', 'the branch name is not a valid git branch name (422)'],
  dailyBudget: ['agent.daily_budget', 'the project’s daily agent cost budget is spent (429)'],
});
