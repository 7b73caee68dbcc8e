import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../cli/help.js';
import { type ApiClient, ClientError, EXIT } from './api.js';
import { stringOption } from './args.js';
import { type CommandContext, show, subcommand } from './context.js';
import { type Column, fields, pageText } from './format.js';
import { projectPath, resolveProject } from './project.js';

interface Session {
  id: string;
  status: string;
  stop_reason: string | null;
  provider: string;
  branch: string | null;
  error: string | null;
  created_at: string;
  totals: { cost_usd: number; num_turns: number };
}
interface Message {
  seq: number;
  role: string;
  kind: string;
  content: string;
}
interface Detail extends Session {
  messages: Message[];
  next_after: number | null;
  produced: { commits: string[]; merge_requests: number[] };
}

const ENDED = new Set(['completed', 'failed', 'stopped']);
const FOLLOW_INTERVAL_MS = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const columns: Column<Session>[] = [
  ['SESSION', (s) => s.id],
  ['STATUS', (s) => s.status],
  ['PROVIDER', (s) => s.provider],
  ['BRANCH', (s) => s.branch],
  ['COST', (s) => `$${s.totals.cost_usd.toFixed(2)}`],
  ['CREATED', (s) => s.created_at],
];

/** `platform sessions start|ls|show`: the agents module's sessions of a project. */
export async function sessions(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['start', 'ls', 'show'] as const);
  const api = ctx.api();
  const base = `${projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd))}/sessions`;
  if (!(await api.offers('POST', '/api/projects/{id}/sessions')))
    throw new ClientError(
      'sessions is not available on this server (it offers no agent sessions)',
      EXIT.unavailable,
    );
  if (sub === 'ls') {
    const query: Record<string, string | undefined> = {};
    for (const n of ['limit', 'cursor', 'status']) query[n] = stringOption(ctx.args, n);
    const page = await api.request<{ items: Session[]; next_cursor: string | null }>('GET', base, { query });
    return show(ctx, page, () => pageText(page, columns));
  }
  if (sub === 'show') {
    const id = ctx.args.positionals[1];
    if (!id || !UUID.test(id))
      throw new UsageError(`expected the session id, got '${id ?? ''}'`, ctx.command);
    const d = await api.request<Detail>('GET', `${base}/${id}`, { query: { limit: 1000 } });
    return show(ctx, d, () => describe(d) + d.messages.map(messageLine).join(''));
  }
  const prompt = ctx.args.positionals[1];
  if (!prompt) throw new UsageError('sessions start needs the "<prompt>"', ctx.command);
  const body: Record<string, unknown> = { prompt };
  const provider = stringOption(ctx.args, 'provider');
  if (provider) body.provider = provider;
  const s = await api.request<Session>('POST', base, { body });
  if (!ctx.args.options.follow) return show(ctx, s, () => `started session ${s.id} (${s.status})\n`);
  ctx.io.err(`started session ${s.id}\n`);
  return follow(ctx, api, `${base}/${s.id}`);
}

function describe(d: Session): string {
  return fields([
    ['session', d.id],
    ['status', d.status + (d.stop_reason ? ` (${d.stop_reason})` : '')],
    ['provider', d.provider],
    ['branch', d.branch],
    ['turns', d.totals.num_turns],
    ['cost', `$${d.totals.cost_usd.toFixed(4)}`],
    ...(d.error ? ([['error', d.error]] as [string, unknown][]) : []),
  ]);
}

const messageLine = (m: Message) =>
  `[${m.role}${m.kind && m.kind !== 'text' ? `/${m.kind}` : ''}] ${m.content}\n`;

/** New messages as they are stored, status changes on stderr, until the session has ended. */
async function follow(ctx: CommandContext, api: ApiClient, url: string): Promise<number> {
  let after = 0;
  let status = '';
  for (;;) {
    const d = await api.request<Detail>('GET', url, { query: { after, limit: 200 } });
    if (d.status !== status) {
      status = d.status;
      ctx.io.err(`session ${d.status}\n`);
    }
    for (const m of d.messages) {
      ctx.io.out(messageLine(m));
      after = Math.max(after, m.seq);
    }
    // Read after the session was seen ended, with no page left: nothing more will come.
    if (ENDED.has(d.status) && d.next_after === null) {
      ctx.io.err(describe(d));
      return d.status === 'completed' ? EXIT.ok : EXIT.failed;
    }
    if (d.next_after === null) await sleep(FOLLOW_INTERVAL_MS);
  }
}
