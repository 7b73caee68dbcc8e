import type { CommandName } from '../cli/help.js';
import { UsageError } from '../cli/help.js';

/** What an option of a client command takes: a value, or nothing (a switch). */
export type OptionKind = 'string' | 'boolean';

export interface ParsedArgs {
  positionals: string[];
  options: Record<string, string | true>;
}

/** Every client command takes these. */
export const COMMON_OPTIONS: Record<string, OptionKind> = {
  json: 'boolean',
  repo: 'string',
  url: 'string',
  help: 'boolean',
};

/**
 * `--name value`, `--name=value`, switches, and `-R owner/name` (`--repo`). An option the command
 * does not know is a usage error naming it (a typo must not be silently ignored).
 */
export function parseArgs(
  argv: string[],
  known: Record<string, OptionKind>,
  command: CommandName,
): ParsedArgs {
  const kinds = { ...COMMON_OPTIONS, ...known };
  const positionals: string[] = [];
  const options: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let key: string | undefined;
    let value: string | undefined;
    if (arg === '-R') key = 'repo';
    else if (arg === '-h') key = 'help';
    else if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      key = arg.slice(2, eq > 0 ? eq : undefined);
      if (eq > 0) value = arg.slice(eq + 1);
    }
    if (key === undefined) {
      positionals.push(arg);
      continue;
    }
    const kind = kinds[key];
    if (!kind) throw new UsageError(`unknown option --${key}`, command);
    if (kind === 'boolean') {
      if (value !== undefined) throw new UsageError(`--${key} takes no value`, command);
      options[key] = true;
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${key} needs a value`, command);
    }
    options[key] = value;
  }
  return { positionals, options };
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const v = args.options[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireString(args: ParsedArgs, name: string, command: CommandName): string {
  const v = stringOption(args, name);
  if (v === undefined) throw new UsageError(`--${name} is required`, command);
  return v;
}

/** A positional number (issue, merge request, pipeline). */
export function numberArg(value: string | undefined, what: string, command: CommandName): number {
  if (!value || !/^[1-9][0-9]{0,9}$/.test(value))
    throw new UsageError(`expected the ${what} number, got '${value ?? ''}'`, command);
  return Number(value);
}
