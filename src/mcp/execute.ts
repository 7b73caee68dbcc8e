import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { CatalogTool } from './catalog.js';

/** One request into the REST API with the caller's own credentials (fastify.inject in routes.ts). */
export interface RouteRequest {
  method: string;
  url: string;
  body?: unknown;
}
export interface RouteAnswer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  payload: Buffer;
}
export type Invoke = (request: RouteRequest) => Promise<RouteAnswer>;

/** What a tool answers: text for the model, an error flag MCP clients show as a tool error. */
export type ToolAnswer = CallToolResult;

/** Characters of one answer (about 6 000 tokens): what a tool may add to an agent's context at once. */
export const RESPONSE_BUDGET = 24_000;

/** A refusal as a tool error: the REST error body's code, reason and message, as JSON. */
export function toolError(error: {
  code: string;
  reason?: string;
  message: string;
  details?: unknown[];
}): ToolAnswer {
  return { content: [{ type: 'text', text: JSON.stringify({ error }) }], isError: true };
}

function answerError(answer: RouteAnswer): ToolAnswer {
  try {
    const body = JSON.parse(answer.payload.toString('utf8')) as { error?: { code: string; message: string } };
    if (body.error && typeof body.error.code === 'string') return toolError(body.error);
  } catch {
    // not the JSON error body: described below
  }
  return toolError({ code: 'internal', message: `HTTP ${answer.status}` });
}

const json = (value: unknown) => JSON.stringify(value);

/** The request URL of a tool call: path parameters substituted, `project` as owner/name or id. */
export function requestFor(
  tool: Pick<CatalogTool, 'method' | 'url' | 'slots' | 'hasBody'>,
  args: Record<string, unknown>,
): RouteRequest {
  const query = new URLSearchParams();
  const body: Record<string, unknown> = {};
  let url = tool.url;
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined || value === null) continue;
    const slot = tool.slots.get(key);
    if (slot === 'path') {
      const text = String(value);
      if (key === 'project') {
        const slash = text.indexOf('/');
        url = url.replace(
          '/api/projects/:id',
          slash > 0
            ? `/api/projects/${encodeURIComponent(text.slice(0, slash))}/${encodeURIComponent(text.slice(slash + 1))}`
            : `/api/projects/${encodeURIComponent(text)}`,
        );
      } else url = url.replace(`:${key}`, encodeURIComponent(text));
    } else if (slot === 'query') {
      // Repeatable parameters (`attr`, `match`) are repeated, as a browser's form would send them.
      for (const v of Array.isArray(value) ? value : [value])
        query.append(key, typeof v === 'string' ? v : json(v));
    } else body[key] = value;
  }
  const qs = query.toString();
  return {
    method: tool.method,
    url: qs ? `${url}?${qs}` : url,
    ...(tool.hasBody ? { body } : {}),
  };
}

/** Inputs the tool does not take are refused by name (a typo must not be silently dropped). */
function unknownInputs(tool: CatalogTool, args: Record<string, unknown>): string[] {
  const known = new Set(Object.keys(tool.inputSchema.properties as Record<string, unknown>));
  return Object.keys(args).filter((k) => !known.has(k));
}

/** Runs a tool: its route (and for composites the route read first), its answer kept within budget. */
export async function runTool(
  tool: CatalogTool,
  args: Record<string, unknown>,
  invoke: Invoke,
  budget = RESPONSE_BUDGET,
): Promise<ToolAnswer> {
  const unknown = unknownInputs(tool, args);
  if (unknown.length)
    return toolError({
      code: 'bad_request',
      message: `unknown input${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
    });
  const input: Record<string, unknown> = { ...args };
  if (tool.prepare) {
    const { project, ...rest } = input;
    const first: Record<string, unknown> = { project };
    for (const key of tool.prepare.args) {
      first[key] = rest[key];
      delete rest[key];
    }
    const prepSlots = new Map<string, 'path'>([
      ['project', 'path'],
      ...tool.prepare.args.map((k) => [k, 'path'] as [string, 'path']),
    ]);
    const answer = await invoke(
      requestFor({ method: 'GET', url: tool.prepare.url, slots: prepSlots, hasBody: false }, first),
    );
    if (answer.status >= 400) return answerError(answer);
    const mapped = tool.prepare.map(JSON.parse(answer.payload.toString('utf8')) as Record<string, unknown>);
    for (const key of Object.keys(input)) delete input[key];
    Object.assign(input, { project }, rest, mapped);
  }
  const budgetKind = tool.budget?.kind;
  let cutOffset = 0;
  if (tool.budget?.kind === 'cut') {
    const key = `${tool.budget.field}_offset`;
    cutOffset = Number(input[key] ?? 0);
    delete input[key];
  }
  if (budgetKind === 'list') input.limit ??= 20;
  if (budgetKind === 'log') return runLog(tool, input, invoke, budget);
  const call = async () => invoke(requestFor(tool, { ...input, ...tool.fixed }));
  let answer = await call();
  if (answer.status >= 400) return answerError(answer);
  if (answer.status === 204 || answer.payload.length === 0)
    return { content: [{ type: 'text', text: 'done' }] };
  let text = answer.payload.toString('utf8');
  if (budgetKind === 'list') {
    // A page too large for the budget is asked for again, smaller; the cursor then covers the rest.
    while (text.length > budget) {
      const items = (JSON.parse(text) as { items: unknown[] }).items.length;
      if (items <= 1) break;
      input.limit = Math.max(1, Math.floor(items / 2));
      answer = await call();
      if (answer.status >= 400) return answerError(answer);
      text = answer.payload.toString('utf8');
    }
    const page = JSON.parse(text) as { next_cursor?: string | null };
    const content = [{ type: 'text' as const, text: cap(text, budget) }];
    if (page.next_cursor)
      content.push({
        type: 'text',
        text: `More: call ${tool.name} again with cursor="${page.next_cursor}".`,
      });
    return { content };
  }
  if (tool.budget?.kind === 'cut') return cutField(tool.name, tool.budget.field, text, cutOffset, budget);
  return { content: [{ type: 'text', text: cap(text, budget) }] };
}

/** Any other answer over budget: cut, saying so (narrow the request to see the rest). */
function cap(text: string, budget: number): string {
  if (text.length <= budget) return text;
  return `${text.slice(0, budget)}\n[cut at ${budget} of ${text.length} characters; narrow the request]`;
}

function cutField(name: string, field: string, text: string, offset: number, budget: number): ToolAnswer {
  const body = JSON.parse(text) as Record<string, unknown>;
  const value = typeof body[field] === 'string' ? (body[field] as string) : '';
  const room = Math.max(1000, budget - (text.length - value.length));
  const part = value.slice(offset, offset + room);
  const end = offset + part.length;
  const content = [{ type: 'text' as const, text: cap(json({ ...body, [field]: part }), budget + 1000) }];
  if (offset > 0 || end < value.length) {
    content.push({
      type: 'text',
      text:
        `${field} shows characters ${offset}–${end} of ${value.length}.` +
        (end < value.length ? ` For the rest: call ${name} again with ${field}_offset=${end}.` : ''),
    });
  }
  return { content };
}

/** A log: from `offset` (at most the budget), or without one the tail within budget. */
async function runLog(
  tool: CatalogTool,
  input: Record<string, unknown>,
  invoke: Invoke,
  budget: number,
): Promise<ToolAnswer> {
  const from = input.offset === undefined ? undefined : Number(input.offset);
  const answer = await invoke(requestFor(tool, { ...input, offset: from ?? 0 }));
  if (answer.status >= 400) return answerError(answer);
  const start = from ?? 0;
  const total = start + answer.payload.length;
  const bytes = answer.payload;
  let shown: Buffer;
  let shownFrom: number;
  if (from === undefined) {
    shown = bytes.length > budget ? bytes.subarray(bytes.length - budget) : bytes;
    shownFrom = total - shown.length;
  } else {
    shown = bytes.subarray(0, budget);
    shownFrom = start;
  }
  const shownTo = shownFrom + shown.length;
  const notes = [`bytes ${shownFrom}–${shownTo} of ${total}`];
  if (shownFrom > 0) notes.push(`earlier: call ${tool.name} with offset=${Math.max(0, shownFrom - budget)}`);
  if (shownTo < total) notes.push(`later: call ${tool.name} with offset=${shownTo}`);
  else notes.push(`new output later: offset=${shownTo}`);
  return {
    content: [
      { type: 'text', text: shown.toString('utf8') },
      { type: 'text', text: `[log ${notes.join('; ')}]` },
    ],
  };
}
