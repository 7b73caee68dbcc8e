import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { VERSION } from '../version.js';
import { toolError } from './execute.js';

export interface StdioBridgeOptions {
  /** The platform's base URL. */
  url: string;
  token: string;
  toolsets?: string;
  readOnly?: boolean;
  /** Diagnostics (stdout is the protocol). */
  log(line: string): void;
}

/** The `/mcp` URL with the selection: the server enforces it on every request it gets. */
export function mcpEndpoint(base: string, toolsets: string | undefined, readOnly: boolean): URL {
  const url = new URL('/mcp', base.endsWith('/') ? base : `${base}/`);
  if (toolsets) url.searchParams.set('toolsets', toolsets);
  if (readOnly) url.searchParams.set('read_only', 'true');
  return url;
}

/**
 * `platform mcp`: MCP over stdio for clients that start a command. It forwards to the platform's
 * `/mcp` with the token, so the tools, their access checks, audit and the read-only bound are the
 * server's — `--read-only` is sent as `read_only=true`, and nothing a stdio client sends can lift it.
 * Resolves when stdin closes.
 */
export async function runStdioBridge(options: StdioBridgeOptions): Promise<void> {
  const endpoint = mcpEndpoint(options.url, options.toolsets, options.readOnly ?? false);
  const remote = new Client({ name: 'platform-mcp-stdio', version: VERSION });
  await remote.connect(
    new StreamableHTTPClientTransport(endpoint, {
      requestInit: { headers: { authorization: `Bearer ${options.token}` } },
    }),
  );
  options.log(`platform mcp: connected to ${endpoint.origin}${endpoint.pathname}`);
  const server = new Server({ name: 'platform', version: VERSION }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async (request) => remote.listTools(request.params));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    try {
      return await remote.callTool(request.params);
    } catch (err) {
      return toolError({
        code: 'unavailable',
        message: `the platform did not answer: ${(err as Error).message}`,
      });
    }
  });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
  await remote.close();
}
