import { ClientError, EXIT } from './api.js';
import { stringOption } from './args.js';
import { type CommandContext, show, subcommand } from './context.js';
import { type Column, fields, pageText, table } from './format.js';
import { projectPath, resolveProject } from './project.js';

interface Deployment {
  environment: string;
  desired_status: string;
  current_status: string;
  status_message: string | null;
  image_ref: string | null;
  commit_sha: string | null;
  target: string | null;
  url: string | null;
  deployed_at: string | null;
  history?: { action?: string; status?: string; created_at?: string; commit_sha?: string | null }[];
}

const columns: Column<Deployment>[] = [
  ['ENVIRONMENT', (d) => d.environment],
  ['DESIRED', (d) => d.desired_status],
  ['CURRENT', (d) => d.current_status],
  ['VERSION', (d) => d.image_ref ?? d.commit_sha?.slice(0, 10)],
  ['TARGET', (d) => d.target],
  ['DEPLOYED', (d) => d.deployed_at],
];

/** `platform deploy status|rollback`: the deployer's environments of a project. */
export async function deploy(ctx: CommandContext): Promise<number> {
  const sub = subcommand(ctx, ['status', 'rollback'] as const);
  const api = ctx.api();
  const base = `${projectPath(resolveProject(ctx.args, ctx.command, ctx.cwd))}/deployments`;
  if (!(await api.offers('GET', '/api/projects/{id}/deployments')))
    throw new ClientError(
      'deploy is not available on this server (it offers no deployments)',
      EXIT.unavailable,
    );
  const env = stringOption(ctx.args, 'environment');
  if (sub === 'status') {
    if (!env) {
      const page = await api.request<{ items: Deployment[]; next_cursor: string | null }>('GET', base);
      return show(ctx, page, () => pageText(page, columns));
    }
    const d = await api.request<Deployment>('GET', `${base}/${encodeURIComponent(env)}`);
    return show(ctx, d, () => {
      const head = fields(columns.map(([h, f]) => [h.toLowerCase(), f(d)]));
      const message = d.status_message ? `message:     ${d.status_message}\n` : '';
      const history = d.history?.length
        ? `\n${table(d.history, [
            ['ACTION', (h) => h.action],
            ['STATUS', (h) => h.status],
            ['COMMIT', (h) => h.commit_sha?.slice(0, 10)],
            ['AT', (h) => h.created_at],
          ])}`
        : '';
      return head + message + history;
    });
  }
  if (!env) throw new ClientError('deploy rollback needs --environment <name>', EXIT.usage);
  const to = stringOption(ctx.args, 'to');
  const d = await api.request<Deployment>('POST', `${base}/${encodeURIComponent(env)}/rollback`, {
    body: to ? { history_id: to } : {},
  });
  return show(
    ctx,
    d,
    () =>
      `rolling back ${d.environment}: ${d.current_status}${d.status_message ? ` (${d.status_message})` : ''}\n`,
  );
}
