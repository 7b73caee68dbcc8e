import { type ConfigSources, configTable, inspectConfig, type SettingRow } from '../config.js';

const from = (row: SettingRow): string => {
  const where =
    row.source === 'default'
      ? row.origin
        ? `default (${row.origin})`
        : 'default'
      : row.source === 'environment'
        ? 'environment'
        : row.source === 'flag'
          ? `flag ${row.origin}`
          : `file (${row.origin})`;
  return row.problem ? `${where} — INVALID` : where;
};

/**
 * `platform config`: every setting's effective value (flags > environment > file > defaults) and
 * where it came from, secrets masked; the problems (unknown PLATFORM_* variables included) after the
 * table on stderr, exit 1. `--reference`: the README's table of defaults and meanings.
 */
export function configCommand(
  sources: ConfigSources,
  reference: boolean,
  out: (text: string) => void,
  err: (text: string) => void,
): number {
  if (reference) {
    out(`${configTable()}\n`);
    return 0;
  }
  const report = inspectConfig(sources);
  const rows: [string, string, string][] = [
    ['SETTING', 'VALUE', 'FROM'],
    ...report.rows.map((r): [string, string, string] => [r.env, r.value, from(r)]),
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length)) + 2;
  const w1 = Math.min(48, Math.max(...rows.map((r) => r[1].length))) + 2;
  out(`${rows.map(([a, b, c]) => `${a.padEnd(w0)}${b.padEnd(w1)}${c}`.trimEnd()).join('\n')}\n`);
  if (report.problems.length === 0) return 0;
  err(
    `\nproblems:\n${report.problems.map((p) => `  - ${p}`).join('\n')}\n` +
      'Fix them before `platform serve`: it refuses to start with any of them.\n',
  );
  return 1;
}
