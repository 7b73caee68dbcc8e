import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { VERSION } from '../version.js';
import { type CatalogTool, selectTools, type ToolSelection } from './catalog.js';
import { type Invoke, runTool, toolError } from './execute.js';
import { DEFAULT_TOOLSETS, TOOLSETS, type Toolset } from './tools.js';

/** The definition a client lists: name, short description, input schema, read-only hint. */
export function toolDefinition(tool: CatalogTool): Tool {
  return {
    name: tool.name,
    description: tool.description,
    inputSchema: tool.inputSchema as Tool['inputSchema'],
    annotations: tool.write ? { readOnlyHint: false } : { readOnlyHint: true },
  };
}

/**
 * `?toolsets=` / `--toolsets`: names added to the default ones (`all` for every toolset,
 * `default` spelled out is allowed). Returns the set, or the unknown names.
 */
export function parseToolsets(value: string | undefined): { toolsets: Set<Toolset> } | { unknown: string[] } {
  const toolsets = new Set<Toolset>(DEFAULT_TOOLSETS);
  if (!value) return { toolsets };
  const unknown: string[] = [];
  for (const name of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (name === 'all') for (const t of TOOLSETS) toolsets.add(t);
    else if (name === 'default') continue;
    else if ((TOOLSETS as readonly string[]).includes(name)) toolsets.add(name as Toolset);
    else unknown.push(name);
  }
  return unknown.length ? { unknown } : { toolsets };
}

/**
 * An MCP server over the selected tools for one caller. A tool outside the selection is refused as
 * unknown whatever the request says, so the selection (read-only above all) is an upper bound.
 */
export function createToolServer(
  catalog: readonly CatalogTool[],
  selection: ToolSelection,
  invoke: Invoke,
): Server {
  const tools = selectTools(catalog, selection);
  const byName = new Map(tools.map((t) => [t.name, t]));
  const server = new Server({ name: 'platform', version: VERSION }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: tools.map(toolDefinition) }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const name = request.params.name;
    const tool = byName.get(name);
    if (!tool) {
      const hidden = catalog.find((t) => t.name === name);
      const message = !hidden
        ? `unknown tool ${name}`
        : !selection.toolsets.has(hidden.toolset)
          ? `tool ${name} is in toolset ${hidden.toolset}, which is not enabled (toolsets=${hidden.toolset})`
          : `tool ${name} writes, and this connection is read-only`;
      return toolError({ code: hidden ? 'forbidden' : 'not_found', message });
    }
    return runTool(tool, (request.params.arguments ?? {}) as Record<string, unknown>, invoke);
  });
  return server;
}
