import type { RawBuilder } from 'kysely';
import { type AppError, badRequest, declareReasons } from '../../core/errors.js';
import { compileLogFilter } from './compile.js';
import { QueryError } from './errors.js';
import { parseLogFilter } from './parser.js';

/** The refusal of a query in the observe query language, wherever one is accepted. */
export const QUERY_REASONS = declareReasons('observe', {
  invalidQuery: [
    'observe.invalid_query',
    'the query does not parse or does not make sense; the message gives the line:column, details the position (400)',
  ],
});

/** Runs `parse`, turning a QueryError into the 400 every route answers for a bad query. */
export function parseOrRefuse<T>(parse: () => T, path: string): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    throw queryRefusal(err, path);
  }
}

export function queryRefusal(err: QueryError, path: string): AppError {
  return badRequest(`invalid query: ${err.message}`, [
    { path, message: err.message, line: err.at.line, column: err.at.column },
  ]).because(QUERY_REASONS.invalidQuery);
}

/** The WHERE fragment of the log search's `query` parameter (undefined when absent); 400 when bad. */
export function logQueryWhere(query: string | undefined): RawBuilder<boolean> | undefined {
  if (query === undefined || query.trim() === '') return undefined;
  return parseOrRefuse(() => compileLogFilter(parseLogFilter(query), { projectId: null }), 'query.query');
}
