/**
 * Query values and their semantics (docs/iot-hub.md, "Queries"; twinlog's choices where it is silent).
 * A value is a JSON value or `undefined` (a missing path). Anything that is not JSON (a function, a
 * symbol, a bigint, a non-finite number) reads as `undefined`, so hostile or odd inputs cannot make
 * the evaluator throw.
 */

export type Kind = 'undefined' | 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

export function kindOf(v: unknown): Kind {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isFinite(v) ? 'number' : 'undefined';
    case 'object':
      return v === null ? 'null' : Array.isArray(v) ? 'array' : 'object';
    default:
      return 'undefined';
  }
}

/** Null, booleans, numbers and strings: the values comparisons accept (docs/iot-hub.md "Query conditions"). */
export function isPrimitiveKind(k: Kind): boolean {
  return k === 'null' || k === 'boolean' || k === 'number' || k === 'string';
}

/**
 * The value at `path`: each step descends into an object's *own* property (never an inherited one
 * such as `constructor`, never into an array); anything else is `undefined`.
 */
export function getPath(root: unknown, path: readonly string[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (kindOf(cur) !== 'object' || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return kindOf(cur) === 'undefined' ? undefined : cur;
}

/**
 * Three-valued comparison (docs/iot-hub.md "Query conditions": comparisons hold between primitives; twinlog: and only
 * between values of the same type, with no coercion). Returns `undefined` when either side is
 * undefined, an object or an array, or when the types differ (`1 = '1'` is neither true nor false).
 * Strings compare by UTF-16 code units (ordinal, case-sensitive); `false < true`; `null` equals
 * itself.
 */
export function compareValues(op: string, a: unknown, b: unknown): boolean | undefined {
  const ka = kindOf(a);
  if (ka !== kindOf(b) || !isPrimitiveKind(ka)) return undefined;
  const x = a as null | boolean | number | string;
  const y = b as null | boolean | number | string;
  switch (op) {
    case '=':
      return x === y;
    case '!=':
      return x !== y;
    case '<':
      return x! < y!;
    case '<=':
      return x! <= y!;
    case '>':
      return x! > y!;
    case '>=':
      return x! >= y!;
    default:
      return undefined;
  }
}

/** Rank of a kind in twinlog's total order of values (the order of GROUP BY rows). */
const RANK: Readonly<Record<Kind, number>> = {
  undefined: 0,
  null: 1,
  boolean: 2,
  number: 3,
  string: 4,
  array: 5,
  object: 6,
};

/**
 * A total order over values: by kind (undefined < null < boolean < number < string < array <
 * object), then false < true, numbers numerically, strings by code units, arrays and objects by
 * their canonical key. Used to sort GROUP BY rows so the output does not depend on input order.
 */
export function orderValues(a: unknown, b: unknown): number {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) return RANK[ka] - RANK[kb];
  switch (ka) {
    case 'boolean':
    case 'number':
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    case 'string':
    case 'array':
    case 'object': {
      const x = ka === 'string' ? (a as string) : valueKey(a);
      const y = ka === 'string' ? (b as string) : valueKey(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    default:
      return 0;
  }
}

/**
 * A string that is equal for equal values and different for different ones: canonical JSON (keys
 * sorted, `-0` as `0`) with `undefined` as `u`. Non-JSON members are skipped like `JSON.stringify`
 * skips them, so it never throws on a JSON tree.
 */
export function valueKey(v: unknown): string {
  switch (kindOf(v)) {
    case 'undefined':
      return 'u';
    case 'null':
      return 'null';
    case 'boolean':
    case 'number':
      return String(v === 0 ? 0 : v);
    case 'string':
      return JSON.stringify(v);
    case 'array':
      return '[' + (v as unknown[]).map((x) => (kindOf(x) === 'undefined' ? 'null' : valueKey(x))).join(',') + ']';
    case 'object': {
      const o = v as Record<string, unknown>;
      const parts: string[] = [];
      for (const k of Object.keys(o).sort()) {
        if (kindOf(o[k]) !== 'undefined') parts.push(JSON.stringify(k) + ':' + valueKey(o[k]));
      }
      return '{' + parts.join(',') + '}';
    }
  }
}

/** Set `row[name] = value` as an own, enumerable property, even for a name like `__proto__`. */
export function setField(row: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
}
