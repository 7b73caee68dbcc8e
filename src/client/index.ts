import { type CommandName, UsageError } from '../cli/help.js';
import { runStdioBridge } from '../mcp/stdio.js';
import { ClientError, connect, EXIT } from './api.js';
import { type OptionKind, parseArgs, stringOption } from './args.js';
import type { CommandContext } from './context.js';
import { deploy } from './deploy.js';
import type { Output } from './format.js';
import { login } from './login.js';
import { logs } from './logs.js';
import { pipelines } from './pipelines.js';
import { issues, mergeRequests, projects } from './resources.js';
import { sessions } from './sessions.js';

export { ApiClient, ClientError, EXIT } from './api.js';
export { credentialsFile, readLogin } from './credentials.js';

const list: Record<string, OptionKind> = { limit: 'string', cursor: 'string' };

/** The client commands and the options each takes (besides --json, -R/--repo, --url, --help). */
const COMMANDS = {
  login: { options: { token: 'string', user: 'string' }, run: login },
  mcp: { options: { toolsets: 'string', 'read-only': 'boolean' }, run: mcp },
  projects: {
    options: { ...list, owner: 'string', q: 'string', description: 'string', visibility: 'string' },
    run: projects,
  },
  issues: {
    options: {
      ...list,
      status: 'string',
      label: 'string',
      assignee: 'string',
      author: 'string',
      q: 'string',
      title: 'string',
      body: 'string',
    },
    run: issues,
  },
  mr: {
    options: {
      ...list,
      status: 'string',
      author: 'string',
      q: 'string',
      source: 'string',
      target: 'string',
      title: 'string',
      body: 'string',
      approve: 'boolean',
      'request-changes': 'boolean',
      comment: 'boolean',
      strategy: 'string',
    },
    run: mergeRequests,
  },
  pipelines: {
    options: { ...list, status: 'string', ref: 'string', var: 'string', step: 'string', follow: 'boolean' },
    run: pipelines,
  },
  deploy: { options: { environment: 'string', to: 'string' }, run: deploy },
  logs: {
    options: {
      ...list,
      tail: 'boolean',
      project: 'string',
      q: 'string',
      level: 'string',
      service: 'string',
      max: 'string',
    },
    run: logs,
  },
  sessions: { options: { ...list, follow: 'boolean', provider: 'string', status: 'string' }, run: sessions },
} satisfies Record<
  string,
  { options: Record<string, OptionKind>; run(ctx: CommandContext): Promise<number> }
>;

export type ClientCommand = keyof typeof COMMANDS;
export const isClientCommand = (name: string): name is ClientCommand & CommandName =>
  Object.hasOwn(COMMANDS, name);

export interface ClientRun {
  io: Output;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdin?: NodeJS.ReadableStream;
}

/**
 * Runs `platform <command> …` as a client of a remote platform and answers its exit code (docs/cli.md):
 * refusals and usage errors are printed on stderr here, so the binary and a caller in-process agree.
 */
export async function runClient(
  command: ClientCommand & CommandName,
  argv: string[],
  run: ClientRun,
): Promise<number> {
  const env = run.env ?? process.env;
  try {
    const spec = COMMANDS[command];
    const args = parseArgs(argv, spec.options, command);
    const ctx: CommandContext = {
      command,
      args,
      io: run.io,
      env,
      cwd: run.cwd ?? process.cwd(),
      stdin: run.stdin ?? process.stdin,
      asJson: args.options.json === true,
      api: () => connect(stringOption(args, 'url'), env),
    };
    return await spec.run(ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      run.io.err(err.describe());
      return EXIT.usage;
    }
    if (err instanceof ClientError) {
      run.io.err(`platform: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

/** `platform mcp`: MCP over stdio, forwarded to the platform's /mcp with the stored or given token. */
async function mcp(ctx: CommandContext): Promise<number> {
  const api = ctx.api();
  await runStdioBridge({
    url: api.baseUrl,
    token: api.token,
    toolsets: stringOption(ctx.args, 'toolsets'),
    readOnly: ctx.args.options['read-only'] === true,
    log: (line) => ctx.io.err(`${line}\n`),
  });
  return EXIT.ok;
}
