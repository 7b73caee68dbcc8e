import { sql } from 'kysely';
import { notFound } from '../core/errors.js';
import type { DbOrTx } from '../store/db.js';

/** The per-project counters on `projects` (owned here), by what they number. */
const COUNTERS = {
  issue: 'next_issue_number',
  merge_request: 'next_mr_number',
  pipeline: 'next_pipeline_number',
} as const;

export type NumberedKind = keyof typeof COUNTERS;

/**
 * The next number of an issue, merge request… in a project: call it in the transaction that inserts
 * the numbered row. The row lock on the project serialises concurrent creators, so numbers are
 * consecutive and never reused (a rolled-back transaction gives its number back).
 */
export async function allocateNumber(trx: DbOrTx, projectId: string, kind: NumberedKind): Promise<number> {
  const column = sql.ref(COUNTERS[kind]);
  const allocated = await sql<{ number: number }>`
    update projects set ${column} = ${column} + 1
    where id = ${projectId}
    returning ${column} - 1 as number`.execute(trx);
  const number = allocated.rows[0]?.number;
  if (number === undefined) throw notFound('project');
  return number;
}
