/**
 * Run a parsed query over an in-memory collection of twins: filter (WHERE), group and aggregate,
 * project, then TOP. Pure: no I/O, no clock; the same query over the same twins in the same order
 * gives the same rows.
 */
import { compileWhere } from './compileWhere.ts';
import { getPath, kindOf, orderValues, setField, valueKey } from './internal/values.ts';
import type { Query, SelectElement } from './query.ts';

/** One result row: a twin (for `SELECT *`) or a plain object of projected and aggregated values. */
export type QueryRow = Readonly<Record<string, unknown>>;

export interface EvaluateOptions {
  /**
   * The caller has already kept only the twins the WHERE clause accepts (e.g. the read model, after
   * an index lookup and {@link compileWhere}), so it is not evaluated again. Default `false`.
   */
  readonly prefiltered?: boolean;
}

/**
 * Evaluate `query` over `twins`, the documents of the collection the query names (`query.from`):
 * device twins for `devices`, module twins for `devices.modules`, job rows for `devices.jobs`. The
 * caller picks the collection; the evaluator reads whatever documents it is given.
 *
 * Semantics (docs/iot-hub.md, "Queries", and this package's README; twinlog's choices where the reference is silent are marked *):
 * - **WHERE** keeps a document only when the condition is Boolean `true` (docs/iot-hub.md "Query conditions"); see
 *   {@link compileWhere} for comparisons, undefined, null and mixed types.
 * - **`SELECT *`** returns the documents themselves (not copies; treat rows as read-only), in
 *   input order.
 * - **Projections** give one plain object per document, in input order, keyed by each element's
 *   name (alias, else the path's last segment, docs/iot-hub.md "Query conditions" casing: `SELECT DeviceId` → `deviceId`). A path
 *   that is undefined for a document is left out of its row*, so a row may be `{}`. Values are the
 *   twin's own (not copies).
 * - **Aggregates without GROUP BY** give exactly one row, even over no documents (`COUNT()` 0).
 * - **GROUP BY** (docs/iot-hub.md "Query functions and grouping") gives one row per distinct value of the grouped path, values compared by
 *   type and content (`1` and `'1'` are different groups*; a document without the path forms the
 *   `undefined` group, whose row omits the path*). Rows are sorted by the grouped value:
 *   undefined < null < booleans < numbers < strings < arrays < objects*, so the result does not
 *   depend on the order of `twins`.
 * - **Aggregates***: `COUNT()` counts the rows of the group. `SUM` and `AVG` use the numbers among
 *   the path's values and ignore every other value (strings such as `'50'` are not converted).
 *   `MIN` and `MAX` use numbers and strings (strings by code units); when a group has both, numbers
 *   rank below strings, so `MIN` is the least number and `MAX` the greatest string. With no usable
 *   value the aggregate is undefined and left out of the row. Unaliased aggregates are named `$1`,
 *   `$2`, … (docs/iot-hub.md "Query functions and grouping").
 * - **TOP n** keeps the first n rows (after grouping).
 *
 * @example
 * const twins = [
 *   { deviceId: 'd1', tags: { region: 'US' }, properties: { reported: { battery: 80 } } },
 *   { deviceId: 'd2', tags: { region: 'EU' }, properties: { reported: { battery: 15 } } },
 *   { deviceId: 'd3', tags: { region: 'US' }, properties: { reported: {} } },
 * ]
 * evaluate(parseQuery("SELECT deviceId, properties.reported.battery AS b FROM devices WHERE tags.region = 'US'"), twins)
 * //=> [{"deviceId":"d1","b":80},{"deviceId":"d3"}]
 * evaluate(parseQuery('SELECT tags.region AS region, COUNT() AS n, AVG(properties.reported.battery) AS avg FROM devices GROUP BY tags.region'), twins)
 * //=> [{"region":"EU","n":1,"avg":15},{"region":"US","n":2,"avg":80}]
 *
 * @throws nothing for JSON documents and a `Query` from `parseQuery`: every value, however typed or
 *   missing, has a defined result.
 */
export function evaluate(query: Query, twins: Iterable<object>, options: EvaluateOptions = {}): QueryRow[] {
  const keep = options.prefiltered === true ? () => true : compileWhere(query);
  const limit = query.top ?? Infinity;
  const select = query.select;
  const rows: QueryRow[] = [];
  if (limit <= 0) return rows;

  if (select !== '*' && (query.groupBy !== undefined || select.some((e) => e.kind === 'aggregate'))) {
    return aggregate(query, select, twins, keep).slice(0, limit);
  }
  for (const twin of twins) {
    if (!keep(twin)) continue;
    rows.push(select === '*' ? (twin as QueryRow) : project(select, twin));
    if (rows.length >= limit) break;
  }
  return rows;
}

function project(select: readonly SelectElement[], twin: object): QueryRow {
  const row: Record<string, unknown> = {};
  for (const e of select) {
    const v = getPath(twin, e.path!);
    if (v !== undefined) setField(row, e.name, v);
  }
  return row;
}

/** Running state of one aggregate over one group. */
interface Accumulator {
  count: number;
  sum: number;
  numbers: number;
  minNumber: number | undefined;
  maxNumber: number | undefined;
  minString: string | undefined;
  maxString: string | undefined;
}

const newAccumulator = (): Accumulator => ({
  count: 0,
  sum: 0,
  numbers: 0,
  minNumber: undefined,
  maxNumber: undefined,
  minString: undefined,
  maxString: undefined,
});

function accumulate(acc: Accumulator, v: unknown): void {
  acc.count++;
  const k = kindOf(v);
  if (k === 'number') {
    const n = v as number;
    acc.sum += n;
    acc.numbers++;
    if (acc.minNumber === undefined || n < acc.minNumber) acc.minNumber = n;
    if (acc.maxNumber === undefined || n > acc.maxNumber) acc.maxNumber = n;
  } else if (k === 'string') {
    const s = v as string;
    if (acc.minString === undefined || s < acc.minString) acc.minString = s;
    if (acc.maxString === undefined || s > acc.maxString) acc.maxString = s;
  }
}

function result(e: SelectElement & { kind: 'aggregate' }, acc: Accumulator): unknown {
  switch (e.fn) {
    case 'COUNT':
      return acc.count;
    case 'SUM':
      return acc.numbers === 0 || !Number.isFinite(acc.sum) ? undefined : acc.sum;
    case 'AVG': {
      if (acc.numbers === 0) return undefined;
      const avg = acc.sum / acc.numbers;
      return Number.isFinite(avg) ? avg : undefined;
    }
    case 'MIN':
      return acc.minNumber ?? acc.minString;
    case 'MAX':
      return acc.maxString ?? acc.maxNumber;
  }
}

interface Group {
  readonly value: unknown;
  readonly accumulators: Accumulator[];
}

function aggregate(
  query: Query,
  select: readonly SelectElement[],
  twins: Iterable<object>,
  keep: (twin: object) => boolean,
): QueryRow[] {
  const groupBy = query.groupBy;
  const groups = new Map<string, Group>();
  const newGroup = (value: unknown): Group => ({ value, accumulators: select.map(newAccumulator) });
  if (groupBy === undefined) groups.set('', newGroup(undefined));

  for (const twin of twins) {
    if (!keep(twin)) continue;
    const value = groupBy === undefined ? undefined : getPath(twin, groupBy);
    const key = groupBy === undefined ? '' : valueKey(value);
    let g = groups.get(key);
    if (g === undefined) {
      g = newGroup(value);
      groups.set(key, g);
    }
    select.forEach((e, i) => {
      if (e.kind === 'aggregate')
        accumulate(g.accumulators[i]!, e.path === undefined ? undefined : getPath(twin, e.path));
    });
  }

  const ordered = [...groups.values()].sort((a, b) => orderValues(a.value, b.value));
  return ordered.map((g) => {
    const row: Record<string, unknown> = {};
    select.forEach((e, i) => {
      const v = e.kind === 'aggregate' ? result(e, g.accumulators[i]!) : g.value;
      if (v !== undefined) setField(row, e.name, v);
    });
    return row;
  });
}
