import { UsageError } from '../cli/help.js';
import { apiError, ClientError, EXIT } from './api.js';
import { stringOption } from './args.js';
import { type CommandContext, show } from './context.js';
import { type Column, pageText } from './format.js';
import { projectPath, resolveProject } from './project.js';

interface LogEntry {
  timestamp: string;
  level: string;
  service: string;
  message: string;
}

const columns: Column<LogEntry>[] = [
  ['TIME', (e) => e.timestamp],
  ['LEVEL', (e) => e.level],
  ['SERVICE', (e) => e.service],
  ['MESSAGE', (e) => e.message],
];

const line = (e: LogEntry) =>
  `${e.timestamp} ${e.level.toUpperCase().padEnd(5)} ${e.service}: ${e.message}\n`;

/**
 * `platform logs --project owner/name`: the newest matching entries; with `--tail` the entries
 * ingested from now on (server-sent events of /api/observe/logs/tail) until interrupted or `--max`.
 */
export async function logs(ctx: CommandContext): Promise<number> {
  const api = ctx.api();
  const project = stringOption(ctx.args, 'project') ?? resolveProject(ctx.args, ctx.command, ctx.cwd);
  if (!/^[^/\s]+\/[^/\s]+$/.test(project))
    throw new UsageError(`--project: expected owner/name, got '${project}'`, 'logs');
  const filters: Record<string, string | undefined> = {};
  for (const n of ['level', 'service', 'q']) filters[n] = stringOption(ctx.args, n);
  const tail = ctx.args.options.tail === true;
  const path = tail ? '/api/observe/logs/tail' : '/api/observe/logs';
  if (!(await api.offers('GET', path)))
    throw new ClientError(
      `logs is not available on this server (it offers no GET ${path})`,
      EXIT.unavailable,
    );
  const { id } = await api.request<{ id: string }>('GET', projectPath(project));
  if (!tail) {
    const page = await api.request<{ items: LogEntry[]; next_cursor: string | null }>('GET', path, {
      query: {
        project_id: id,
        ...filters,
        limit: stringOption(ctx.args, 'limit'),
        cursor: stringOption(ctx.args, 'cursor'),
      },
    });
    return show(ctx, page, () => pageText(page, columns));
  }
  const max = stringOption(ctx.args, 'max');
  if (max !== undefined && !/^[1-9][0-9]{0,8}$/.test(max))
    throw new UsageError(`--max: expected a count, got '${max}'`, 'logs');
  let left = max === undefined ? Number.POSITIVE_INFINITY : Number(max);
  const res = await fetch(api.url(path, { project_id: id, ...filters }), {
    headers: { authorization: `Bearer ${api.token}`, accept: 'text/event-stream' },
  }).catch((err: Error) => {
    throw new ClientError(`cannot reach ${api.baseUrl}: ${err.message}`, EXIT.unavailable);
  });
  if (!res.ok || !res.body) throw apiError(res.status, await res.json().catch(() => undefined));
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(event)?.[1];
      const data = /^data: (.*)$/m.exec(event)?.[1];
      if (name === 'ready') ctx.io.err(`tailing logs of ${project} (Ctrl-C to stop)\n`);
      else if (name === 'dropped')
        throw new ClientError(`the server dropped the tail: ${data ?? ''}`, EXIT.unavailable);
      else if (name === 'log' && data) {
        const entry = JSON.parse(data) as LogEntry;
        ctx.io.out(ctx.asJson ? `${JSON.stringify(entry)}\n` : line(entry));
        if (--left <= 0) {
          await res.body.cancel().catch(() => undefined);
          return EXIT.ok;
        }
      }
    }
  }
  throw new ClientError('the server ended the tail', EXIT.unavailable);
}
