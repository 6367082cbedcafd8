/**
 * The twin paths a query reads, for index selection in the read model.
 */
import type { Expr, Path, Query } from './query.ts';

/** Which clauses to collect paths from. */
export type PathScope = 'all' | 'where';

/**
 * The distinct twin paths `query` reads, resolved (collection prefix stripped, root fields in
 * canonical casing), sorted by their JSON text so the result is deterministic. With `scope:
 * 'where'` only the WHERE clause counts (what an index can serve); with `'all'` (the default) the
 * projection, aggregate arguments and GROUP BY are included too.
 *
 * Gotcha: `SELECT *` reads the whole document, which no path expresses; check
 * `query.select === '*'` for that. Paths are segment arrays, since a segment may contain dots.
 *
 * @example
 * const q = parseQuery("SELECT deviceId FROM devices WHERE tags.[[floor-no]] = 3 OR IS_DEFINED(Devices.Tags.x)")
 * referencedPaths(q)          //=> [["deviceId"],["tags","floor-no"],["tags","x"]]
 * referencedPaths(q, 'where') //=> [["tags","floor-no"],["tags","x"]]
 */
export function referencedPaths(query: Query, scope: PathScope = 'all'): Path[] {
  const found = new Map<string, Path>();
  const add = (p: Path): void => {
    found.set(JSON.stringify(p), p);
  };
  if (query.where !== undefined) collect(query.where, add);
  if (scope === 'all') {
    if (query.select !== '*') for (const e of query.select) if (e.path !== undefined) add(e.path);
    if (query.groupBy !== undefined) add(query.groupBy);
  }
  return [...found.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p);
}

function collect(e: Expr, add: (p: Path) => void): void {
  switch (e.kind) {
    case 'constant':
      return;
    case 'path':
      add(e.path);
      return;
    case 'call':
      e.args.forEach((a) => collect(a, add));
      return;
    case 'compare':
    case 'arithmetic':
      collect(e.left, add);
      collect(e.right, add);
      return;
    case 'negate':
    case 'not':
    case 'in':
      collect(e.operand, add);
      return;
    case 'and':
    case 'or':
      e.operands.forEach((o) => collect(o, add));
      return;
  }
}
