/** Output of the client commands: tables for people, the API's JSON for scripts. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export type Column<T> = [header: string, cell: (row: T) => unknown];

const MAX_CELL = 60;

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '-';
  const text = Array.isArray(value) ? value.join(',') : String(value);
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_CELL ? `${line.slice(0, MAX_CELL - 1)}…` : line;
}

/** A plain-text table: a header row, then one row per item, columns padded. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = [columns.map(([h]) => h), ...rows.map((r) => columns.map(([, f]) => cellText(f(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return `${cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

/** `key: value` lines of one resource. */
export function fields(pairs: readonly [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return `${pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v === null || v === undefined ? '-' : String(v)}`).join('\n')}\n`;
}

export const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** A `{items, next_cursor}` page: the table, and how to see more. */
export function pageText<T>(
  page: { items: T[]; next_cursor?: string | null },
  columns: readonly Column<T>[],
): string {
  if (page.items.length === 0) return 'nothing found\n';
  const more = page.next_cursor ? `(more: --cursor ${page.next_cursor})\n` : '';
  return table(page.items, columns) + more;
}
