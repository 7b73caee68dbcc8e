/**
 * The shell script a step runs (`/bin/sh -c`), shared by both runners: one shell for all commands (so
 * `cd` and exported variables carry over), `set -e`, stderr joined into stdout so the log keeps the
 * order in which lines were written, and each command echoed as `$ cmd` before it runs. Commands are
 * the pipeline author's shell code by design; only the echo is quoted.
 */
export function buildStepScript(commands: string[]): string {
  const lines = ['exec 2>&1', 'set -e'];
  for (const command of commands) {
    lines.push(`printf '%s\\n' ${shellQuote(`$ ${command}`)}`);
    lines.push(command);
  }
  return `${lines.join('\n')}\n`;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
