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
