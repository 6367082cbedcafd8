/**
 * The WHERE clause of a query as a predicate, for callers that filter twins themselves (the read
 * model after an index lookup, configurations' target conditions, jobs' query conditions).
 */
import { compileExpr } from './internal/compileExpr.ts';
import type { Query } from './query.ts';

/**
 * A predicate that is true exactly for the documents the query's WHERE clause keeps: the clause must
 * evaluate to Boolean `true`; `false`, `null`, `undefined` (a missing property, a comparison across
 * types) and every other value reject (docs/iot-hub.md, "Queries"). Without WHERE, every document
 * passes. The predicate never throws and does not mutate the document; it is safe to call from many
 * places at once.
 *
 * The full expression semantics (three-valued logic, no coercion, own properties only) are in the
 * table atop `internal/compileExpr.ts` and in the package README.
 *
 * @example
 * const keep = compileWhere(parseQuery("SELECT * FROM devices WHERE tags.region = 'US' AND NOT IS_DEFINED(tags.retired)"))
 * keep({ deviceId: 'd1', tags: { region: 'US' } })                  //=> true
 * keep({ deviceId: 'd2', tags: { region: 'US', retired: true } })   //=> false
 * keep({ deviceId: 'd3', tags: {} })                                //=> false
 * compileWhere(parseQuery('SELECT * FROM devices'))({})             //=> true
 */
export function compileWhere(query: Query): (twin: object) => boolean {
  if (query.where === undefined) return () => true;
  const f = compileExpr(query.where);
  return (twin) => f(twin) === true;
}
