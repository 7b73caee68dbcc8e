import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../cli/help.js';
import { type ApiClient, ClientError, EXIT } from './api.js';
import { stringOption } from './args.js';
import { type CommandContext, show, subcommand } from './context.js';
import { type Column, fields, pageText, table } from './format.js';
import { projectPath, resolveProject } from './project.js';

interface Step {
  id: string;
  name: string;
  status: string;
  exit_code: number | null;
  duration_ms: number | null;
}
interface Pipeline {
  number: number;
  status: string;
  ref_name: string;
  commit_sha: string;
  trigger: string;
  created_at: string;
  duration_ms: number | null;
  error: string | null;
  steps?: Step[];
}

const FINISHED = new Set(['success', 'failure', 'cancelled']);
const STEP_WAITING = new Set(['pending', 'blocked', 'skipped']);
/** How often `--follow` asks for new log bytes and the pipeline's status. */
const FOLLOW_INTERVAL_MS = 500;
/** Polls after the pipeline finished while a log is not yet stored (then it stops anyway). */
const MAX_DRAINS = 40;

const columns: Column<Pipeline>[] = [
  ['#', (p) => p.number],
  ['STATUS', (p) => p.status],
  ['REF', (p) => p.ref_name],
  ['COMMIT', (p) => p.commit_sha.slice(0, 10)],
  ['TRIGGER', (p) => p.trigger],
  ['CREATED', (p) => p.created_at],
];

const seconds = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);

function describe(p: Pipeline): string {
  return (
    fields([
      ['pipeline', `#${p.number}`],
      ['status', p.status],
      ['ref', p.ref_name],
      ['commit', p.commit_sha],
      ['duration', seconds(p.duration_ms)],
      ...(p.error ? ([['error', p.error]] as [string, unknown][]) : []),
    ]) +
    (p.steps?.length
      ? `\n${table(p.steps, [
          ['STEP', (s) => s.name],
          ['STATUS', (s) => s.status],
          ['EXIT', (s) => s.exit_code],
          ['DURATION', (s) => seconds(s.duration_ms)],
        ])}`
      : '')
  );
}

export async function pipelines(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['run', 'ls', 'show', 'logs'] as const);
  const api = ctx.api();
  const base = `${projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd))}/pipelines`;
  if (sub === 'ls') {
    const query: Record<string, string | undefined> = {};
    for (const n of ['limit', 'cursor', 'status', 'ref']) query[n] = stringOption(ctx.args, n);
    const page = await api.request<{ items: Pipeline[]; next_cursor: string | null }>('GET', base, { query });
    return show(ctx, page, () => pageText(page, columns));
  }
  if (sub === 'run') {
    const ref = stringOption(ctx.args, 'ref');
    if (!ref) throw new UsageError('pipelines run needs --ref <branch or tag>', ctx.command);
    const variables: Record<string, string> = {};
    const vars = stringOption(ctx.args, 'var');
    for (const pair of vars ? vars.split(',') : []) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError(`--var: expected NAME=value, got '${pair}'`, ctx.command);
      variables[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const p = await api.request<Pipeline>('POST', base, { body: { git_ref: ref, variables } });
    if (!ctx.args.options.follow) return show(ctx, p, () => `started pipeline #${p.number} (${p.status})\n`);
    ctx.io.err(`started pipeline #${p.number}\n`);
    return follow(ctx, api, base, String(p.number), undefined);
  }
  const id = ctx.args.positionals[1];
  if (!id || !/^[1-9][0-9]{0,9}$/.test(id))
    throw new UsageError(`expected the pipeline number, got '${id ?? ''}'`, ctx.command);
  if (sub === 'show') {
    const p = await api.request<Pipeline>('GET', `${base}/${id}`);
    return show(ctx, p, () => describe(p));
  }
  const step = stringOption(ctx.args, 'step');
  if (ctx.args.options.follow) return follow(ctx, api, base, id, step);
  const p = await api.request<Pipeline>('GET', `${base}/${id}`);
  for (const s of selectSteps(p, step)) {
    const log = await api.raw('GET', `${base}/${id}/steps/${encodeURIComponent(s.name)}/logs`);
    if (log.status >= 400) continue; // a step that never ran has no log
    ctx.io.out(`==> ${s.name} (${s.status})\n${log.bytes.toString('utf8')}`);
  }
  return 0;
}

function selectSteps(p: Pipeline, step: string | undefined): Step[] {
  const steps = p.steps ?? [];
  if (!step) return steps;
  const found = steps.filter((s) => s.name === step);
  if (!found.length) throw new ClientError(`pipeline #${p.number} has no step '${step}'`, EXIT.notFound);
  return found;
}

/**
 * `logs --follow`: new bytes of each step's log as they come (by offset), step status changes on
 * stderr, until the pipeline has finished and every log is read. Exit 0 on success, 8 otherwise.
 */
async function follow(
  ctx: CommandContext,
  api: ApiClient,
  base: string,
  id: string,
  step: string | undefined,
): Promise<number> {
  const offsets = new Map<string, number>();
  const statuses = new Map<string, string>();
  let current: string | undefined;
  let drains = 0;
  for (;;) {
    const p = await api.request<Pipeline>('GET', `${base}/${id}`);
    const done = FINISHED.has(p.status);
    let complete = true;
    for (const s of selectSteps(p, step)) {
      if (statuses.get(s.name) !== s.status) {
        statuses.set(s.name, s.status);
        ctx.io.err(`[${s.name}] ${s.status}\n`);
      }
      if (STEP_WAITING.has(s.status)) continue;
      const from = offsets.get(s.name) ?? 0;
      const log = await api.raw('GET', `${base}/${id}/steps/${encodeURIComponent(s.name)}/logs`, {
        query: { offset: from },
      });
      if (log.status >= 400) continue;
      // A step finished a moment ago may not have its log stored yet: read until it says complete.
      if (log.headers.get('x-log-complete') !== 'true') complete = false;
      if (log.bytes.length === 0) continue;
      if (current !== s.name) {
        ctx.io.out(`==> ${s.name}\n`);
        current = s.name;
      }
      ctx.io.out(log.bytes.toString('utf8'));
      const next = Number(log.headers.get('x-next-offset'));
      offsets.set(s.name, Number.isFinite(next) && next > from ? next : from + log.bytes.length);
    }
    // The logs were read after the pipeline was seen finished, each complete: nothing more will come.
    if (done && (complete || ++drains > MAX_DRAINS)) {
      ctx.io.err(`pipeline #${p.number} ${p.status}${p.error ? `: ${p.error}` : ''}\n`);
      return p.status === 'success' ? EXIT.ok : EXIT.failed;
    }
    await sleep(FOLLOW_INTERVAL_MS);
  }
}
