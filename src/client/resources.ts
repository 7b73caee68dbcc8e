import { UsageError } from '../cli/help.js';
import { numberArg, requireString, stringOption } from './args.js';
import { type CommandContext, show, subcommand } from './context.js';
import { type Column, fields, pageText } from './format.js';
import { projectPath, resolveProject } from './project.js';

type Row = Record<string, unknown>;
interface Page {
  items: Row[];
  next_cursor: string | null;
}

const listQuery = (ctx: CommandContext, names: string[]) => {
  const query: Record<string, string | undefined> = {};
  for (const n of ['limit', 'cursor', ...names]) query[n] = stringOption(ctx.args, n);
  return query;
};

const projectColumns: Column<Row>[] = [
  ['PROJECT', (p) => `${p.owner}/${p.name}`],
  ['VISIBILITY', (p) => p.visibility],
  ['DEFAULT BRANCH', (p) => p.default_branch],
  ['DESCRIPTION', (p) => p.description],
];

export async function projects(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['ls', 'create', 'show'] as const);
  const api = ctx.api();
  if (sub === 'ls') {
    const page = await api.request<Page>('GET', '/api/projects', { query: listQuery(ctx, ['owner', 'q']) });
    return show(ctx, page, () => pageText(page, projectColumns));
  }
  if (sub === 'show') {
    const p = await api.request<Row>('GET', projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd)));
    return show(ctx, p, () => fields(projectColumns.map(([h, f]) => [h.toLowerCase(), f(p)])));
  }
  const name = ctx.args.positionals[1];
  if (!name) throw new UsageError('projects create needs the project <name>', ctx.command);
  const body: Row = { name };
  const description = stringOption(ctx.args, 'description');
  const visibility = stringOption(ctx.args, 'visibility');
  if (description !== undefined) body.description = description;
  if (visibility !== undefined) body.visibility = visibility;
  const p = await api.request<Row>('POST', '/api/projects', { body });
  return show(ctx, p, () => `created ${p.owner}/${p.name}\n`);
}

const issueColumns: Column<Row>[] = [
  ['#', (i) => i.number],
  ['STATUS', (i) => i.status],
  ['TITLE', (i) => i.title],
  ['AUTHOR', (i) => i.author],
  ['LABELS', (i) => i.labels],
];

export async function issues(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['ls', 'show', 'create', 'comment', 'close'] as const);
  const api = ctx.api();
  const base = `${projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd))}/issues`;
  if (sub === 'ls') {
    const page = await api.request<Page>('GET', base, {
      query: listQuery(ctx, ['status', 'label', 'assignee', 'author', 'q']),
    });
    return show(ctx, page, () => pageText(page, issueColumns));
  }
  if (sub === 'create') {
    const body: Row = { title: requireString(ctx.args, 'title', ctx.command) };
    const text = stringOption(ctx.args, 'body');
    if (text !== undefined) body.body = text;
    const issue = await api.request<Row>('POST', base, { body });
    return show(ctx, issue, () => `opened issue #${issue.number}: ${issue.title}\n`);
  }
  const number = numberArg(ctx.args.positionals[1], 'issue', ctx.command);
  if (sub === 'show') {
    const issue = await api.request<Row>('GET', `${base}/${number}`);
    return show(
      ctx,
      issue,
      () =>
        `${fields(issueColumns.map(([h, f]) => [h === '#' ? 'number' : h.toLowerCase(), f(issue)]))}\n${issue.body ?? ''}\n`,
    );
  }
  if (sub === 'comment') {
    const comment = await api.request<Row>('POST', `${base}/${number}/comments`, {
      body: { body: requireString(ctx.args, 'body', ctx.command) },
    });
    return show(ctx, comment, () => `commented on issue #${number}\n`);
  }
  const issue = await api.request<Row>('PATCH', `${base}/${number}`, { body: { status: 'closed' } });
  return show(ctx, issue, () => `closed issue #${issue.number}\n`);
}

const mrColumns: Column<Row>[] = [
  ['!', (m) => m.number],
  ['STATUS', (m) => m.status],
  ['TITLE', (m) => m.title],
  ['BRANCHES', (m) => `${m.source_branch} → ${m.target_branch}`],
  ['AUTHOR', (m) => (m.author as { name?: string } | null)?.name],
];

const VERDICTS = { approve: 'approve', 'request-changes': 'request_changes', comment: 'comment' } as const;

export async function mergeRequests(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['ls', 'show', 'create', 'review', 'merge'] as const);
  const api = ctx.api();
  const base = `${projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd))}/merge-requests`;
  if (sub === 'ls') {
    const page = await api.request<Page>('GET', base, { query: listQuery(ctx, ['status', 'author', 'q']) });
    return show(ctx, page, () => pageText(page, mrColumns));
  }
  if (sub === 'create') {
    const body: Row = {
      source_branch: requireString(ctx.args, 'source', ctx.command),
      target_branch: requireString(ctx.args, 'target', ctx.command),
      title: requireString(ctx.args, 'title', ctx.command),
    };
    const text = stringOption(ctx.args, 'body');
    if (text !== undefined) body.body = text;
    const mr = await api.request<Row>('POST', base, { body });
    return show(ctx, mr, () => `opened merge request !${mr.number}: ${mr.title}\n`);
  }
  const number = numberArg(ctx.args.positionals[1], 'merge request', ctx.command);
  if (sub === 'show') {
    const mr = await api.request<Row>('GET', `${base}/${number}`);
    return show(ctx, mr, () => describeMergeRequest(mr));
  }
  if (sub === 'review') {
    const chosen = (Object.keys(VERDICTS) as (keyof typeof VERDICTS)[]).filter((v) => ctx.args.options[v]);
    if (chosen.length !== 1)
      throw new UsageError(
        'mr review needs exactly one of --approve, --request-changes, --comment',
        ctx.command,
      );
    const body: Row = { verdict: VERDICTS[chosen[0]!] };
    const text = stringOption(ctx.args, 'body');
    if (text !== undefined) body.body = text;
    const review = await api.request<Row>('POST', `${base}/${number}/reviews`, { body });
    return show(ctx, review, () => `reviewed !${number}: ${review.verdict}\n`);
  }
  const body: Row = {};
  const strategy = stringOption(ctx.args, 'strategy');
  if (strategy !== undefined) body.strategy = strategy;
  const mr = await api.request<Row>('POST', `${base}/${number}/merge`, { body });
  return show(
    ctx,
    mr,
    () => `merged !${mr.number} (${mr.merge_strategy ?? ''} ${mr.merge_sha ?? mr.status})\n`,
  );
}

function describeMergeRequest(mr: Row): string {
  const blockers = (mr.blockers as { reason?: string; message?: string }[] | undefined) ?? [];
  const checks = mr.checks as { latest_pipeline?: { status?: string } | null } | undefined;
  return (
    fields([
      ['number', mr.number],
      ['title', mr.title],
      ['status', mr.status],
      ['branches', `${mr.source_branch} → ${mr.target_branch}`],
      ['author', (mr.author as { name?: string } | null)?.name],
      ['pipeline', checks?.latest_pipeline?.status ?? 'none'],
      ['mergeable', mr.mergeable],
    ]) +
    (blockers.length
      ? `blockers:\n${blockers.map((b) => `  - ${b.message ?? ''} (${b.reason ?? ''})`).join('\n')}\n`
      : '') +
    (mr.body ? `\n${mr.body}\n` : '')
  );
}
