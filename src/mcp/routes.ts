import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError, badRequest, unauthorized } from '../core/errors.js';
import { type AnyRouteDef, route } from '../core/http.js';
import { type CatalogTool, isReadOnlyScopes } from './catalog.js';
import type { Invoke } from './execute.js';
import { createToolServer, parseToolsets } from './server.js';

/** One JSON-RPC message (batches are gone from the protocol): the transport checks the rest. */
const mcpBody = z.looseObject({
  jsonrpc: z.literal('2.0'),
  method: z.string().min(1).max(200).optional(),
  id: z
    .union([z.string().max(200), z.number()])
    .nullable()
    .optional(),
});

const mcpQuery = z.object({
  toolsets: z.string().max(500).optional(),
  read_only: z.enum(['true', 'false', '1', '0']).optional(),
});

export interface McpRouteDeps {
  fastify: FastifyInstance;
  /** The tools derived from the registry (built once every module's routes are registered). */
  catalog(): readonly CatalogTool[];
}

const notAllowed = (method: string) => async () => {
  throw new AppError(
    405,
    'method_not_allowed',
    `${method} /mcp: this server is stateless; send messages with POST`,
  );
};

/**
 * Streamable HTTP, stateless: each POST gets a server over the caller's tools and answers JSON. Tool
 * calls run the REST routes in-process with the caller's own Authorization header, so access
 * checks, validation, audit and error bodies are those of the API.
 */
export function mcpRoutes(deps: McpRouteDeps): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/mcp',
      summary:
        'MCP (Streamable HTTP, stateless, JSON answers) with a bearer token; ?toolsets= adds toolsets, ?read_only=true removes write tools',
      tags: ['mcp'],
      access: 'authenticated',
      query: mcpQuery,
      body: mcpBody,
      raw: true,
      produces: {
        contentType: 'application/json',
        description: 'the JSON-RPC answer (202 for notifications)',
      },
      handler: async ({ req, reply, query, requirePrincipal }) => {
        const principal = requirePrincipal();
        const authorization = req.headers.authorization;
        if (!authorization) throw unauthorized('MCP needs an API token: Authorization: Bearer <token>');
        const parsed = parseToolsets(query.toolsets);
        if ('unknown' in parsed)
          throw badRequest(`unknown toolsets: ${parsed.unknown.join(', ')}`, [
            { path: 'query.toolsets', message: 'unknown toolset' },
          ]);
        const scopes = principal.token?.scopes ?? null;
        const readOnly = query.read_only === 'true' || query.read_only === '1' || isReadOnlyScopes(scopes);
        const invoke: Invoke = async ({ method, url, body }) => {
          const res = await deps.fastify.inject({
            method: method as 'GET',
            url,
            remoteAddress: req.ip,
            headers: {
              authorization,
              ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            },
            ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
          });
          return { status: res.statusCode, headers: res.headers, payload: res.rawPayload };
        };
        const server = createToolServer(
          deps.catalog(),
          { toolsets: parsed.toolsets, readOnly, scopes },
          invoke,
        );
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: undefined,
          enableJsonResponse: true,
        });
        reply.hijack();
        reply.raw.on('close', () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(req.raw, reply.raw, req.body);
        return reply;
      },
    }),
    route({
      method: 'GET',
      url: '/mcp',
      summary: 'Not offered: the MCP endpoint is stateless (no server-initiated stream)',
      tags: ['mcp'],
      access: 'authenticated',
      status: 204,
      handler: notAllowed('GET'),
    }),
    route({
      method: 'DELETE',
      url: '/mcp',
      summary: 'Not offered: the MCP endpoint keeps no sessions',
      tags: ['mcp'],
      access: 'authenticated',
      status: 204,
      handler: notAllowed('DELETE'),
    }),
  ];
}
