import type { FastifyInstance } from 'fastify';
import type { AnyRouteDef } from '../core/http.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import { buildCatalog, type CatalogTool } from './catalog.js';
import { mcpRoutes } from './routes.js';
import { TOOL_SPECS } from './tools.js';

export interface McpService {
  /** The tools derived from the registered routes (every toolset, write tools included). */
  catalog(): readonly CatalogTool[];
}

/**
 * The MCP endpoint. Composed last: its tools are derived from every other module's registered
 * routes, read when the first MCP request arrives (the registry is complete by then).
 */
export function createMcpModule(
  _ctx: ModuleContext,
  deps: { fastify: FastifyInstance; routes: () => readonly AnyRouteDef[] },
): PlatformModule<McpService> {
  let catalog: CatalogTool[] | undefined;
  const service: McpService = {
    catalog: () => {
      catalog ??= buildCatalog(deps.routes(), TOOL_SPECS);
      return catalog;
    },
  };
  return {
    name: 'mcp',
    routes: mcpRoutes({ fastify: deps.fastify, catalog: service.catalog }),
    service,
    // Built at start: a tool whose route does not fit fails the start, not an agent's first call.
    start: async () => {
      service.catalog();
    },
  };
}
