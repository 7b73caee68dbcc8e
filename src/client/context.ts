import { type CommandName, UsageError, unknownName } from '../cli/help.js';
import type { ApiClient } from './api.js';
import type { ParsedArgs } from './args.js';
import type { Output } from './format.js';
import { json } from './format.js';

/** What a client command runs with. */
export interface CommandContext {
  command: CommandName;
  args: ParsedArgs;
  io: Output;
  env: NodeJS.ProcessEnv;
  /** Where the command runs: its git remote names the project when -R is not given. */
  cwd: string;
  /** Where `login --user` reads the password. */
  stdin: NodeJS.ReadableStream;
  api(): ApiClient;
  /** --json: print what the API returned, as JSON. */
  asJson: boolean;
}

/** Prints the API's answer: JSON with --json, else the human form. */
export function show(ctx: CommandContext, value: unknown, human: () => string): number {
  ctx.io.out(ctx.asJson ? json(value) : human());
  return 0;
}

/** The subcommand, checked against the command's list (with a did-you-mean). */
export function subcommand<S extends string>(ctx: CommandContext, known: readonly S[]): S {
  const sub = ctx.args.positionals[0];
  if (!sub) throw new UsageError(`${ctx.command} needs a command: ${known.join(', ')}`, ctx.command);
  if (!(known as readonly string[]).includes(sub))
    throw new UsageError(unknownName(`${ctx.command} command`, sub, known), ctx.command);
  return sub as S;
}
