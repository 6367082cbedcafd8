/**
 * WHERE → SQL over the `leaves` index: a compound SELECT of twin ids that is a *superset* of the
 * twins the clause keeps (often exactly them). The caller always re-checks the candidates with
 * `compileWhere`, so a pushdown may over-approximate but must never drop a twin the evaluator keeps.
 *
 * | expression | SQL over `leaves(twin, path, kind, val)` |
 * |---|---|
 * | `p = c`, `<`, `<=`, `>`, `>=`, `!=` (c a number, boolean or string) | `path = p AND kind = kind(c) AND val op c` (same-type comparison, docs/iot-hub.md "Query conditions") |
 * | `p = null` | `path = p AND kind = null` |
 * | `p IN [..]` | the union of the equalities |
 * | `IS_DEFINED(p)`, `IS_NULL` … `IS_PRIMITIVE` | `path = p` and the kind |
 * | `STARTSWITH(p, 'abc')` | a string range `['abc', 'abd')` |
 * | `ENDSWITH`, `CONTAINS` | `kind = string` |
 * | a bare path `p` | `kind = boolean AND val = 1` |
 * | `a AND b` | INTERSECT of the operands that push down (the others are left to the re-check) |
 * | `a OR b` | UNION, only when every operand pushes down |
 * | `NOT`, `NIN`, arithmetic, path-to-path comparisons | nothing (every twin is a candidate) |
 *
 * Strings: SQLite compares UTF-8 bytes (code point order) and the evaluator UTF-16 code units; the
 * two orders agree unless a surrogate pair meets a character in U+E000–U+FFFF, so a string *range*
 * pushes down only when the constant has no code unit at or above U+D800. Paths through `$metadata`
 * are not indexed and never push down.
 */
import type { Expr, Path, QueryConstant } from '@twinlog/query';

/** Leaf kinds as stored in `leaves.kind`. */
export const KIND = { null: 0, boolean: 1, number: 2, string: 3, array: 4, object: 5 } as const;

/** The separator of path segments in `leaves.path` (keys cannot contain control characters). */
export const PATH_SEPARATOR = '\u001f';

export const pathKey = (path: Path): string => path.join(PATH_SEPARATOR);

/** `leaves.path` holds interned ids: this scalar subquery turns a bound path key into its id. */
export const PATH_ID = '(SELECT id FROM paths WHERE key = ?)';

/** Whether a path is in the index (everything except `$metadata` subtrees). */
export const isIndexedPath = (path: Path): boolean => path.length > 0 && !path.includes('$metadata');

/** A SELECT of twin ids (column `twin`) and its parameters. */
export interface IdFilter {
  readonly sql: string;
  readonly params: readonly unknown[];
  /** How many leaf lookups it makes (bounded, to keep the statement small). */
  readonly terms: number;
}

const MAX_TERMS = 64;
const EMPTY: IdFilter = { sql: 'SELECT twin FROM leaves WHERE 0', params: [], terms: 1 };

const leaf = (where: string, params: unknown[]): IdFilter => ({
  sql: `SELECT twin FROM leaves WHERE ${where}`,
  params,
  terms: 1,
});

/** The id filter for a WHERE clause, or `undefined` when nothing pushes down (scan every twin). */
export function pushdown(e: Expr): IdFilter | undefined {
  const f = push(e);
  return f === undefined || f.terms > MAX_TERMS ? undefined : f;
}

function push(e: Expr): IdFilter | undefined {
  switch (e.kind) {
    case 'constant':
      return e.value === true ? undefined : EMPTY;
    case 'path':
      return isIndexedPath(e.path)
        ? leaf('path = ' + PATH_ID + ' AND kind = ? AND val = 1', [pathKey(e.path), KIND.boolean])
        : undefined;
    case 'compare': {
      if (e.left.kind === 'path' && e.right.kind === 'constant') return compare(e.left.path, e.op, e.right.value);
      if (e.right.kind === 'path' && e.left.kind === 'constant') return compare(e.right.path, flip(e.op), e.left.value);
      return undefined;
    }
    case 'in': {
      if (e.negated || e.operand.kind !== 'path' || !isIndexedPath(e.operand.path)) return undefined;
      const parts: IdFilter[] = [];
      for (const [kind, values] of groupByKind(e.values)) {
        if (kind === KIND.null)
          parts.push(leaf('path = ' + PATH_ID + ' AND kind = ?', [pathKey(e.operand.path), KIND.null]));
        else
          parts.push(
            leaf(`path = ${PATH_ID} AND kind = ? AND val IN (${values.map(() => '?').join(', ')})`, [
              pathKey(e.operand.path),
              kind,
              ...values,
            ]),
          );
      }
      if (parts.length === 0) return EMPTY;
      return combine('UNION', parts);
    }
    case 'call': {
      const a = e.args[0];
      if (a === undefined || a.kind !== 'path' || !isIndexedPath(a.path)) return undefined;
      const p = pathKey(a.path);
      switch (e.fn) {
        case 'IS_DEFINED':
          return leaf('path = ' + PATH_ID + '', [p]);
        case 'IS_NULL':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.null]);
        case 'IS_BOOL':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.boolean]);
        case 'IS_NUMBER':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.number]);
        case 'IS_STRING':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.string]);
        case 'IS_ARRAY':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.array]);
        case 'IS_OBJECT':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.object]);
        case 'IS_PRIMITIVE':
          return leaf('path = ' + PATH_ID + ' AND kind <= ?', [p, KIND.string]);
        case 'STARTSWITH': {
          const b = e.args[1];
          if (
            b?.kind === 'constant' &&
            typeof b.value === 'string' &&
            b.value.length > 0 &&
            rangeSafe(b.value) &&
            b.value.charCodeAt(b.value.length - 1) < 0xd7ff
          ) {
            const prefix = b.value;
            const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
            return leaf('path = ' + PATH_ID + ' AND kind = ? AND val >= ? AND val < ?', [
              p,
              KIND.string,
              prefix,
              upper,
            ]);
          }
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.string]);
        }
        case 'ENDSWITH':
        case 'CONTAINS':
          return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.string]);
      }
      return undefined;
    }
    case 'and': {
      const parts = e.operands.map(push).filter((f): f is IdFilter => f !== undefined);
      if (parts.length === 0) return undefined;
      return combine('INTERSECT', parts);
    }
    case 'or': {
      const parts: IdFilter[] = [];
      for (const o of e.operands) {
        const f = push(o);
        if (f === undefined) return undefined;
        parts.push(f);
      }
      return combine('UNION', parts);
    }
    case 'not':
    case 'negate':
    case 'arithmetic':
      return undefined;
  }
}

function combine(op: 'UNION' | 'INTERSECT', parts: readonly IdFilter[]): IdFilter {
  if (parts.length === 1) return parts[0]!;
  return {
    sql: parts.map((p) => `SELECT twin FROM (${p.sql})`).join(` ${op} `),
    params: parts.flatMap((p) => p.params),
    terms: parts.reduce((n, p) => n + p.terms, 0),
  };
}

function compare(path: Path, op: string, c: QueryConstant): IdFilter | undefined {
  if (!isIndexedPath(path)) return undefined;
  const p = pathKey(path);
  if (c === undefined || Array.isArray(c)) return EMPTY; // never a Boolean true (docs/iot-hub.md "Query conditions": primitives only)
  if (c === null)
    return op === '=' ? leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.null]) : op === '!=' ? EMPTY : undefined;
  const sqlOp = op === '!=' ? '<>' : op;
  if (typeof c === 'boolean')
    return leaf(`path = ${PATH_ID} AND kind = ? AND val ${sqlOp} ?`, [p, KIND.boolean, c ? 1 : 0]);
  if (typeof c === 'number')
    return Number.isFinite(c) ? leaf(`path = ${PATH_ID} AND kind = ? AND val ${sqlOp} ?`, [p, KIND.number, c]) : EMPTY;
  if (typeof c === 'string') {
    if (op === '=' || op === '!=' || rangeSafe(c))
      return leaf(`path = ${PATH_ID} AND kind = ? AND val ${sqlOp} ?`, [p, KIND.string, c]);
    return leaf('path = ' + PATH_ID + ' AND kind = ?', [p, KIND.string]);
  }
  return undefined;
}

function flip(op: string): string {
  return op === '<' ? '>' : op === '>' ? '<' : op === '<=' ? '>=' : op === '>=' ? '<=' : op;
}

/** Whether a string compares the same way by UTF-8 bytes and by UTF-16 code units against any string. */
function rangeSafe(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0xd800) return false;
  return true;
}

/** IN values by stored kind (arrays and undefined never compare equal: dropped). */
function groupByKind(values: readonly QueryConstant[]): Map<number, unknown[]> {
  const out = new Map<number, unknown[]>();
  const add = (k: number, v: unknown): void => {
    const list = out.get(k) ?? [];
    list.push(v);
    out.set(k, list);
  };
  for (const v of values) {
    if (v === null) add(KIND.null, null);
    else if (typeof v === 'boolean') add(KIND.boolean, v ? 1 : 0);
    else if (typeof v === 'number' && Number.isFinite(v)) add(KIND.number, v);
    else if (typeof v === 'string') add(KIND.string, v);
  }
  return out;
}
