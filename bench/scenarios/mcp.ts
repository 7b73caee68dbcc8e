/**
 * mcp: what the MCP tool definitions cost an agent's context. A platform is started as `npm start`
 * runs it, an SDK client lists the tools over Streamable HTTP — the default toolsets, and every
 * toolset — and the size of the definitions as the client receives them (the JSON of `tools/list`'s
 * `tools`) is printed in bytes and estimated tokens (bytes / 4, the usual estimate for JSON-heavy
 * text). Absolute goal: the default set stays a small part of a context window.
 */
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';
/** Estimated tokens of the default tool definitions an agent carries in every request. */
const DEFAULT_GOAL_TOKENS = 4000;
/** Every toolset at once (opt-in): still well below a tenth of a 200k-token window. */
const ALL_GOAL_TOKENS = 12000;
const estimateTokens = (bytes: number) => Math.ceil(bytes / 4);

async function definitions(
  base: string,
  token: string,
  query: string,
): Promise<{ count: number; bytes: number }> {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}/mcp${query}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  try {
    const { tools } = await client.listTools();
    return { count: tools.length, bytes: Buffer.byteLength(JSON.stringify(tools)) };
  } finally {
    await client.close();
  }
}

export const mcp: Scenario = {
  name: 'mcp',
  description: 'size of the MCP tool definitions (tools/list over /mcp): default toolsets and all toolsets',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const dir = ctx.tempDir('platform-bench-mcp-');
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    ctx.progress('platform: starting');
    const platform = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: path.join(dir, 'data'),
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
      }),
    });
    await platform.waitReady(`${base}/readyz`, 180_000);
    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench');
    const standard = await definitions(base, token, '');
    const all = await definitions(base, token, '?toolsets=all');
    const readOnly = await definitions(base, token, '?read_only=true');
    const figure = (name: string, d: { count: number; bytes: number }, goal: number): Figure => ({
      name,
      unit: 'tokens (estimated)',
      reference: null,
      platform: { label: `${d.count} tools, ${d.bytes} bytes`, value: estimateTokens(d.bytes) },
      ratio: null,
      goal: { on: 'value', op: '<=', value: goal },
      met: estimateTokens(d.bytes) <= goal,
    });
    const figures = [
      figure('default toolsets', standard, DEFAULT_GOAL_TOKENS),
      figure('default toolsets, read-only', readOnly, DEFAULT_GOAL_TOKENS),
      figure('all toolsets (?toolsets=all)', all, ALL_GOAL_TOKENS),
    ];
    return {
      description: this.description,
      figures,
      met: figures.every((f) => f.met),
      notes: [
        'bytes: JSON of the `tools` array as listed to the client (name, description, inputSchema, annotations)',
        'tokens estimated as bytes / 4; no tokenizer is bundled',
      ],
    };
  },
};
