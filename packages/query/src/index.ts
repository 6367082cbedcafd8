/**
 * @twinlog/query: the IoT Hub twin query language (docs/iot-hub.md, "Queries") as pure functions. Parse
 * text with {@link parseQuery} / {@link safeParseQuery}, run it over in-memory twins with
 * {@link evaluate}, page the rows with {@link paginate}; {@link compileWhere} and
 * {@link referencedPaths} serve a read model that filters and indexes itself, and
 * {@link formatQuery} prints the canonical text. Failures are `TwinlogError`s with `QUERY_*` codes.
 */
export { parseQuery, safeParseQuery, MAX_QUERY_LENGTH, MAX_NESTING, MAX_EXPRESSION_DEPTH } from './parseQuery.ts';
export { evaluate } from './evaluate.ts';
export type { EvaluateOptions, QueryRow } from './evaluate.ts';
export { compileWhere } from './compileWhere.ts';
export { referencedPaths } from './referencedPaths.ts';
export type { PathScope } from './referencedPaths.ts';
export { paginate, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './paginate.ts';
export type { Page, PageOptions } from './paginate.ts';
export { formatQuery } from './formatQuery.ts';
export type { QueryPosition } from './internal/queryError.ts';
export type {
  AggregateName,
  ArithmeticOp,
  Collection,
  CompareOp,
  Expr,
  FunctionName,
  Path,
  Query,
  QueryConstant,
  SelectElement,
} from './query.ts';
