export type { SessionFinishedEvent } from './events.js';
export { AGENT_LEASE_LOOP, AGENT_REAP_LOOP, type AgentsModuleOptions, createAgentsModule } from './module.js';
export { type AgentProvider, ClaudeStreamParser, claudeCodeProvider, commandProvider } from './providers.js';
export { AGENT_REASONS } from './reasons.js';
export { AgentsService, mcpConfiguration } from './service.js';
