/**
 * The parsed form of an IoT Hub twin query (docs/iot-hub.md, "Queries"): plain, immutable data with no
 * source positions, so two texts that mean the same query parse to deep-equal values and
 * `parseQuery(formatQuery(q))` deep-equals `q`.
 *
 * Paths are already resolved when a `Query` exists: the collection prefix is stripped
 * (`devices.tags.x` → `['tags', 'x']`) and root fields are in canonical casing (`DeviceId` →
 * `['deviceId']`), so consumers (the evaluator, the read model, index selection) never re-derive
 * them.
 */

/** The collections a query may run over (docs/iot-hub.md "Query language"). */
export type Collection = 'devices' | 'devices.modules' | 'devices.jobs';

/**
 * A twin path as its segments, root first: `tags.[[a.b]].c` is `['tags', 'a.b', 'c']`. Segments
 * are taken literally, so a segment may contain dots.
 */
export type Path = readonly string[];

/**
 * A literal: `null`, `undefined`, a boolean, a number, a string or an array literal of these.
 * (There are no object literals in the grammar.)
 */
export type QueryConstant = null | undefined | boolean | number | string | readonly QueryConstant[];

/** `<>` is parsed as `!=`. */
export type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>=';
export type ArithmeticOp = '+' | '-' | '*' | '/' | '%';

/** The functions twin queries accept (docs/iot-hub.md "Query functions and grouping"; names are case-insensitive in the text). */
export type FunctionName =
  | 'IS_DEFINED'
  | 'IS_NULL'
  | 'IS_BOOL'
  | 'IS_NUMBER'
  | 'IS_STRING'
  | 'IS_OBJECT'
  | 'IS_ARRAY'
  | 'IS_PRIMITIVE'
  | 'STARTSWITH'
  | 'ENDSWITH'
  | 'CONTAINS';

/** A WHERE expression. `AND` and `OR` are n-ary and flattened: `a AND (b AND c)` has three operands. */
export type Expr =
  | { readonly kind: 'constant'; readonly value: QueryConstant }
  | { readonly kind: 'path'; readonly path: Path }
  | { readonly kind: 'call'; readonly fn: FunctionName; readonly args: readonly Expr[] }
  | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'arithmetic'; readonly op: ArithmeticOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'negate'; readonly operand: Expr }
  | { readonly kind: 'not'; readonly operand: Expr }
  | { readonly kind: 'and'; readonly operands: readonly Expr[] }
  | { readonly kind: 'or'; readonly operands: readonly Expr[] }
  | {
      readonly kind: 'in';
      readonly negated: boolean;
      readonly operand: Expr;
      readonly values: readonly QueryConstant[];
    };

export type AggregateName = 'COUNT' | 'AVG' | 'SUM' | 'MIN' | 'MAX';

/**
 * One element of the SELECT list. `name` is the key it gets in each result row: the alias, else
 * the path's last segment, else (an unaliased aggregate) `$1`, `$2`, … counted over the unaliased
 * aggregates (docs/iot-hub.md "Query functions and grouping"; twinlog choice).
 */
export type SelectElement =
  | { readonly kind: 'path'; readonly path: Path; readonly name: string }
  | { readonly kind: 'aggregate'; readonly fn: 'COUNT'; readonly path: undefined; readonly name: string }
  | {
      readonly kind: 'aggregate';
      readonly fn: Exclude<AggregateName, 'COUNT'>;
      readonly path: Path;
      readonly name: string;
    };

/** A parsed query. Build one with `parseQuery`; print one with `formatQuery`. */
export interface Query {
  /** `TOP n`: the most rows the query returns, or `undefined` for no limit. */
  readonly top: number | undefined;
  /** `'*'` (whole documents) or the projection list. */
  readonly select: '*' | readonly SelectElement[];
  readonly from: Collection;
  readonly where: Expr | undefined;
  readonly groupBy: Path | undefined;
}
