import { closestName } from '../config.js';
import { VERSION } from '../version.js';

/**
 * What `platform --help` and `platform <command> --help` print. One entry per command: the global
 * help lists the summaries, a command's help its usage lines and options.
 */
interface CommandHelp {
  summary: string;
  usage: string[];
  description?: string;
  options?: [string, string][];
}

const settingOptions: [string, string][] = [
  ['--config <file>', 'YAML/JSON config file (environment variables and flags override it)'],
  [
    '--<setting> <value>',
    'any setting, e.g. --port 9000 --data-dir /srv/platform (`platform config` lists them)',
  ],
];

/** Options of every client command (they talk to a remote platform; see docs/cli.md for exit codes). */
const clientOptions: [string, string][] = [
  ['-R, --repo <owner/name>', 'the project (default: the origin remote of the current git repository)'],
  ['--json', 'print what the API returned, as JSON'],
  ['--url <URL>', 'the platform (default: PLATFORM_URL or the stored login)'],
  ['--limit <N>, --cursor <C>', 'page size and the cursor of the next page (lists)'],
];

export const commands = {
  serve: {
    summary: 'start the server (default: embedded PostgreSQL in ./data, port 8080)',
    usage: ['platform serve [--<setting> <value> …]'],
    description:
      'Applies pending migrations, creates the admin user on first start (its generated password is printed once), ' +
      'and serves the API, git and the background work until SIGTERM/SIGINT.',
    options: settingOptions,
  },
  migrate: {
    summary: 'apply pending database migrations and exit',
    usage: ['platform migrate [--<setting> <value> …]'],
    options: settingOptions,
  },
  admin: {
    summary: 'create users and tokens, reset passwords (works without a running server)',
    usage: [
      'platform admin create-user <name> <email> [--password P] [--role ROLE] [--type human|agent|service_account]',
      'platform admin reset-password <name> [--password P]',
      'platform admin create-token <user> [--token-name N] [--scopes a,b] [--expires-in-days D]',
    ],
    options: [
      ['--password <P>', 'the password to set; generated and printed when omitted'],
      ['--role <ROLE>', 'a global role to give the new user (e.g. admin)'],
      ['--type <T>', 'human (default), agent or service_account'],
      ['--token-name <N>', 'name of the token (default: cli)'],
      ['--scopes <a,b>', 'permissions the token is limited to (default: all of the user’s)'],
      ['--expires-in-days <D>', 'token lifetime in days (default: no expiry)'],
      ...settingOptions,
    ],
  },
  secrets: {
    summary: 're-encrypt every secret with a new master key',
    usage: ['platform secrets rotate-key [--new-key <64 hex>]'],
    description:
      'Re-encrypts every secret and webhook signing secret with a new master key in one transaction; ' +
      'refused while a server runs against the database.',
    options: [
      ['--new-key <hex>', 'the new key, 64 hex characters; generated when omitted'],
      ...settingOptions,
    ],
  },
  doctor: {
    summary: 'check git, database, cache, object store, executor and SMTP',
    usage: ['platform doctor [--<setting> <value> …]'],
    description: 'Looks without setting anything up; exits 1 when a required part is missing.',
    options: settingOptions,
  },
  config: {
    summary: 'print every setting: its effective value and where it came from',
    usage: ['platform config [--config <file>] [--<setting> <value> …]', 'platform config --reference'],
    description:
      'Values come from flags, then the environment (PLATFORM_*), then the config file, then the defaults; ' +
      'secrets are masked. Exits 1, naming each problem, when something is invalid.',
    options: [
      [
        '--reference',
        'print the table of every setting, its default and meaning (Markdown, as in the README)',
      ],
      ...settingOptions,
    ],
  },
  login: {
    summary: 'client: sign in to a platform and store a token (0600, in the config directory)',
    usage: [
      'platform login <url> --token <token>',
      'platform login <url> --user <name>   (password on stdin)',
    ],
    description:
      'Checks the token (or signs in and creates a token for this machine) and stores it in ' +
      '$XDG_CONFIG_HOME/platform/credentials.json (default ~/.config). PLATFORM_URL and PLATFORM_TOKEN override it.',
    options: [
      ['--token <T>', 'an API token (default: PLATFORM_TOKEN)'],
      ['--user <name>', 'sign in with this user; the password is read from stdin'],
    ],
  },
  mcp: {
    summary: 'MCP server on stdio for agents (forwards to the platform’s /mcp with your token)',
    usage: ['platform mcp [--toolsets a,b|all] [--read-only] [--url URL]'],
    description:
      'Default toolsets: projects, files, issues, merge_requests, pipelines; more: secrets, notifications (or all). ' +
      'Token: PLATFORM_TOKEN or the stored login. See docs/mcp.md.',
    options: [
      ['--toolsets <a,b>', 'toolsets to add to the default ones, or all'],
      ['--read-only', 'no write tools at all (the server enforces it)'],
      ['--url <URL>', 'the platform (default: PLATFORM_URL or the stored login)'],
    ],
  },
  projects: {
    summary: 'client: list, show or create projects',
    usage: [
      'platform projects ls [--owner O] [--q TEXT]',
      'platform projects show -R owner/name',
      'platform projects create <name> [--description D] [--visibility V]',
    ],
    options: clientOptions,
  },
  issues: {
    summary: 'client: list, show, open, comment on and close issues',
    usage: [
      'platform issues ls [-R owner/name] [--status open|closed|all] [--label L] [--q TEXT]',
      'platform issues show <number>',
      'platform issues create --title T [--body B]',
      'platform issues comment <number> --body B',
      'platform issues close <number>',
    ],
    options: clientOptions,
  },
  mr: {
    summary: 'client: merge requests: open, list, show (blockers, checks), review, merge',
    usage: [
      'platform mr ls [-R owner/name] [--status open|merged|closed|all]',
      'platform mr show <number>',
      'platform mr create --source BRANCH --target BRANCH --title T [--body B]',
      'platform mr review <number> --approve|--request-changes|--comment [--body B]',
      'platform mr merge <number> [--strategy merge|squash|fast_forward]',
    ],
    options: clientOptions,
  },
  pipelines: {
    summary: 'client: run pipelines, list and show them, print or follow their logs',
    usage: [
      'platform pipelines run --ref BRANCH [--var NAME=value,…] [--follow]',
      'platform pipelines ls [--status S] [--ref R]',
      'platform pipelines show <number>',
      'platform pipelines logs <number> [--step NAME] [--follow]',
    ],
    description:
      'With --follow the logs are printed as they come until the pipeline ends; exit 8 when it did not succeed.',
    options: clientOptions,
  },
  deploy: {
    summary: 'client: deployment status of a project’s environments, and rollback',
    usage: [
      'platform deploy status [-R owner/name] [--environment E]',
      'platform deploy rollback --environment E [-R owner/name] [--to HISTORY_ID]',
    ],
    options: clientOptions,
  },
  logs: {
    summary: 'client: search or tail a project’s logs',
    usage: [
      'platform logs --project owner/name [--level warn] [--service S] [--q TEXT] [--limit N]',
      'platform logs --tail --project owner/name [--level L] [--max N]',
    ],
    description:
      'Without --tail: the newest matching entries. With --tail: entries as they are ingested, until Ctrl-C (or --max entries).',
    options: clientOptions,
  },
  sessions: {
    summary: 'client: start an agent session and follow it; list and show sessions',
    usage: [
      'platform sessions start "<prompt>" [-R owner/name] [--provider P] [--follow]',
      'platform sessions ls [--status S]',
      'platform sessions show <session id>',
    ],
    description:
      'With --follow the agent’s messages are printed as they come until the session ends; exit 8 unless it completed.',
    options: clientOptions,
  },
  version: { summary: 'print the version', usage: ['platform version'] },
  help: {
    summary: 'print this help, or a command’s: platform help <command>',
    usage: ['platform help [<command>]'],
  },
} satisfies Record<string, CommandHelp>;

export type CommandName = keyof typeof commands;
export const commandNames = Object.keys(commands) as CommandName[];
export const isCommand = (name: string): name is CommandName => Object.hasOwn(commands, name);

const table = (rows: [string, string][], indent = '  ') => {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}${right}`).join('\n');
};

export function globalHelp(): string {
  return `platform ${VERSION} — forge, CI, auth, observability, notifications, secrets and CD in one service

Usage: platform <command> [options]

Commands:
${table(commandNames.map((name) => [name, commands[name].summary]))}

Options:
${table([...settingOptions, ['--help', 'this help; `platform <command> --help` for a command’s']])}
Every setting is also an environment variable PLATFORM_<SETTING>; see \`platform config\`.
`;
}

export function commandHelp(name: CommandName): string {
  const help: CommandHelp = commands[name];
  const parts = [`Usage: ${help.usage.join('\n       ')}`, '', help.description ?? `${help.summary}.`];
  if (help.options) parts.push('', 'Options:', table(help.options));
  return `${parts.join('\n')}\n`;
}

/** A command line that does not fit its command: says what is wrong and where the usage is. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: CommandName,
  ) {
    super(message);
    this.name = 'UsageError';
  }

  /** The lines printed on stderr. */
  describe(): string {
    const where = this.command ? `platform ${this.command} --help` : 'platform --help';
    return `platform: ${this.message}\nRun \`${where}\` for the usage.\n`;
  }
}

/** `unknown <what> 'x'; did you mean 'y'?` */
export function unknownName(what: string, word: string, known: readonly string[]): string {
  const suggestion = closestName(word, known);
  return `unknown ${what} '${word}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`;
}
