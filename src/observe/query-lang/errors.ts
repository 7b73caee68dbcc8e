import type { Position } from './ast.js';

/**
 * A query that does not parse or does not make sense: the message ends with the position
 * (`expected ']' at 1:37`) so a person or an agent can fix it without guessing.
 */
export class QueryError extends Error {
  constructor(
    readonly problem: string,
    readonly at: Position,
    /** What was there instead, when something else was expected. */
    readonly found?: string,
  ) {
    super(`${problem} at ${at.line}:${at.column}${found ? ` (found ${found})` : ''}`);
    this.name = 'QueryError';
  }
}
