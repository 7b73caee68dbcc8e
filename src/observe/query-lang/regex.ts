import v8 from 'node:v8';

/*
 * The query language's regular expressions run in JavaScript on the live tail and on cold-tier
 * (Parquet) rows, and they come from any caller with observe:read. V8's default engine backtracks: a
 * pattern like `(a|a)*b` takes exponential time on a line of a's, and one such line would stall the
 * whole process. V8's linear-time engine (the `l` flag) has no such case; it is behind a flag, set
 * here once, before any pattern of this module is compiled (the flag only admits `l`; every other
 * regular expression in the process is untouched). PostgreSQL's engine, which runs the same patterns
 * on the hot tier, does not backtrack exponentially either.
 */
v8.setFlagsFromString('--enable-experimental-regexp-engine');

/** The linear-time engine's flag (a variable: a literal `/…/l` is not valid TypeScript). */
const LINEAR = 'l';

/** Whether this runtime accepts the `l` flag (false only if a future Node drops the V8 flag). */
export const LINEAR_REGEXP = (() => {
  try {
    new RegExp('a', LINEAR);
    return true;
  } catch {
    return false;
  }
})();

/** Why a pattern is refused: the linear engine has no backtracking-only features. */
export const NOT_LINEAR =
  'this regular expression cannot run in linear time: backreferences, lookaround, \\p{…} classes and counted repetitions above {,16} are not supported';

/**
 * A user's pattern compiled for the linear-time engine; throws a SyntaxError (message NOT_LINEAR when
 * the pattern is valid but needs backtracking). Without the `l` flag (an unforeseen runtime), the
 * default engine is used.
 */
export function userRegExp(source: string): RegExp {
  if (!LINEAR_REGEXP) return new RegExp(source, 'u');
  try {
    return new RegExp(source, LINEAR);
  } catch (err) {
    // A valid pattern the linear engine refuses, or an invalid one (the message tells which).
    new RegExp(source, 'u');
    throw new SyntaxError(NOT_LINEAR, { cause: err });
  }
}
