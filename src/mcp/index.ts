export { buildCatalog, type CatalogTool, isReadOnlyScopes, selectTools } from './catalog.js';
export { RESPONSE_BUDGET } from './execute.js';
export { createMcpModule, type McpService } from './module.js';
export { createToolServer, parseToolsets, toolDefinition } from './server.js';
export { DEFAULT_TOOLSETS, TOOL_SPECS, TOOLSETS, type Toolset } from './tools.js';
