import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route } from '../core/http.js';
import { deriveTool } from './catalog.js';
import { type RouteAnswer, type RouteRequest, requestFor, runTool } from './execute.js';

const handler = async () => undefined;
const logRoute = route({
  method: 'GET',
  url: '/api/projects/:id/pipelines/:pid/steps/:sid/logs',
  summary: 'log',
  tags: [],
  access: 'public',
  params: z.object({ id: z.uuid(), pid: z.string(), sid: z.string() }),
  query: z.object({ offset: z.coerce.number().int().min(0).default(0) }),
  raw: true,
  handler,
});
const listRoute = route({
  method: 'GET',
  url: '/api/projects/:id/issues',
  summary: 'list',
  tags: [],
  access: 'public',
  params: z.object({ id: z.uuid() }),
  query: paginationQuery.extend({ label: z.union([z.string(), z.array(z.string())]).optional() }),
  handler,
});
const blobRoute = route({
  method: 'GET',
  url: '/api/projects/:id/blob',
  summary: 'blob',
  tags: [],
  access: 'public',
  params: z.object({ id: z.uuid() }),
  query: z.object({ path: z.string() }),
  handler,
});

const answer = (body: string | Buffer, status = 200): RouteAnswer => ({
  status,
  headers: {},
  payload: Buffer.isBuffer(body) ? body : Buffer.from(body),
});

/** The requests a tool made, answered by `reply`. */
function recorder(reply: (r: RouteRequest) => RouteAnswer) {
  const seen: RouteRequest[] = [];
  const invoke = async (r: RouteRequest) => {
    seen.push(r);
    return reply(r);
  };
  return { seen, invoke };
}

const texts = (r: { content: unknown }) => (r.content as { text: string }[]).map((c) => c.text);

describe('MCP tool execution', () => {
  it('builds the request: project as owner/name or id, repeated query values, unknown inputs refused', async () => {
    const tool = deriveTool(
      { name: 'issue_list', toolset: 'issues', description: '', route: '', budget: { kind: 'list' } },
      listRoute as AnyRouteDef,
    );
    expect(requestFor(tool, { project: 'maria/tool', label: ['a', 'b'], limit: 5 }).url).toBe(
      '/api/projects/maria/tool/issues?label=a&label=b&limit=5',
    );
    expect(requestFor(tool, { project: '3f1c', cursor: 'x/y' }).url).toBe(
      '/api/projects/3f1c/issues?cursor=x%2Fy',
    );
    const { invoke, seen } = recorder(() => answer('{}'));
    const refused = await runTool(tool, { project: 'a/b', colour: 'red' }, invoke);
    expect(refused.isError).toBe(true);
    expect(texts(refused)[0]).toContain('colour');
    expect(seen).toEqual([]);
  });

  it('a log shows its tail within the budget, or the bytes from an offset, and says where the rest is', async () => {
    const tool = deriveTool(
      { name: 'pipeline_log', toolset: 'pipelines', description: '', route: '', budget: { kind: 'log' } },
      logRoute as AnyRouteDef,
    );
    const log = Buffer.from('0123456789'.repeat(10));
    const { invoke, seen } = recorder((r) =>
      answer(log.subarray(Number(new URL(r.url, 'http://x').searchParams.get('offset')))),
    );
    const tail = await runTool(tool, { project: 'a/b', pid: '1', sid: 'build' }, invoke, 30);
    expect(texts(tail)[0]).toBe(log.subarray(70).toString());
    expect(texts(tail)[1]).toContain('bytes 70–100 of 100');
    expect(texts(tail)[1]).toContain('offset=40');
    const from = await runTool(tool, { project: 'a/b', pid: '1', sid: 'build', offset: 10 }, invoke, 30);
    expect(texts(from)[0]).toBe(log.subarray(10, 40).toString());
    expect(texts(from)[1]).toContain('later: call pipeline_log with offset=40');
    expect(seen.map((r) => r.url)).toEqual([
      '/api/projects/a/b/pipelines/1/steps/build/logs?offset=0',
      '/api/projects/a/b/pipelines/1/steps/build/logs?offset=10',
    ]);
  });

  it('a page over the budget is asked for again with fewer items; the cursor covers the rest', async () => {
    const tool = deriveTool(
      { name: 'issue_list', toolset: 'issues', description: '', route: '', budget: { kind: 'list' } },
      listRoute as AnyRouteDef,
    );
    const { invoke, seen } = recorder((r) => {
      const limit = Number(new URL(r.url, 'http://x').searchParams.get('limit'));
      const items = Array.from({ length: limit }, (_, i) => ({ n: i, body: 'x'.repeat(100) }));
      return answer(JSON.stringify({ items, next_cursor: `after-${limit - 1}` }));
    });
    const result = await runTool(tool, { project: 'a/b' }, invoke, 1000);
    expect(seen.map((r) => new URL(r.url, 'http://x').searchParams.get('limit'))).toEqual(['20', '10', '5']);
    expect(texts(result)[0]!.length).toBeLessThanOrEqual(1000);
    expect(texts(result)[1]).toBe('More: call issue_list again with cursor="after-4".');
  });

  it('a cut field shows a window of it and names the offset to read on', async () => {
    const tool = deriveTool(
      {
        name: 'file_read',
        toolset: 'files',
        description: '',
        route: '',
        budget: { kind: 'cut', field: 'content' },
      },
      blobRoute as AnyRouteDef,
    );
    const content = 'a'.repeat(3000) + 'b'.repeat(3000);
    const { invoke } = recorder(() => answer(JSON.stringify({ path: 'f', content })));
    const first = await runTool(tool, { project: 'a/b', path: 'f' }, invoke, 3000);
    const shown = JSON.parse(texts(first)[0]!).content as string;
    expect(content.startsWith(shown)).toBe(true);
    expect(texts(first)[1]).toContain(`content_offset=${shown.length}`);
    const next = await runTool(
      tool,
      { project: 'a/b', path: 'f', content_offset: shown.length },
      invoke,
      3000,
    );
    expect(content.slice(shown.length).startsWith(JSON.parse(texts(next)[0]!).content)).toBe(true);
  });

  it('an API refusal is a tool error carrying code, reason and message', async () => {
    const tool = deriveTool(
      { name: 'file_read', toolset: 'files', description: '', route: '' },
      blobRoute as AnyRouteDef,
    );
    const body = {
      error: { code: 'not_found', reason: 'git.path_not_found', message: 'no such path', details: [] },
    };
    const { invoke } = recorder(() => answer(JSON.stringify(body), 404));
    const result = await runTool(tool, { project: 'a/b', path: 'nope' }, invoke);
    expect(result.isError).toBe(true);
    expect(JSON.parse(texts(result)[0]!)).toEqual(body);
  });
});
