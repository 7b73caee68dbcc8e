export type * from './ast.js';
export {
  type CompileScope,
  compileAlert,
  compileLogFilter,
  conditionHolds,
  LOG_LEVELS,
  type LogTableRef,
} from './compile.js';
export { QueryError } from './errors.js';
export { compileLogMatcher, type LiveLogEntry, type ProjectResolver } from './match.js';
export { parseAggregation, parseAlert, parseLogFilter } from './parser.js';
export { logQueryWhere, parseOrRefuse, QUERY_REASONS, queryRefusal } from './reasons.js';
