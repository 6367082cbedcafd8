/**
 * Print a {@link Query} as canonical query text: keywords upper-case, single-quoted strings,
 * parentheses only where precedence needs them. `parseQuery(formatQuery(q))` deep-equals `q` for
 * every `q` that `parseQuery` returns (a property test checks it), so the text can key caches, be
 * logged, or be stored in place of the AST.
 */
import { isBareName, writeEscaped, writePath } from './internal/names.ts';
import type { Collection, Expr, Query, QueryConstant } from './query.ts';

/**
 * The canonical text of `query`.
 *
 * Details: `<>` prints as `!=`, `NOT IN` as `NIN`, hex numbers in decimal, and names are escaped
 * with `[[ ]]` when they are not bare identifiers, are keywords, or would otherwise be re-read
 * differently (a first segment `devices`, a root field in other casing). An alias is printed only
 * when it differs from the name the element would get anyway.
 *
 * @example
 * formatQuery(parseQuery("select top 5 DeviceId, count() from devices where tags.[[group]] <> 'a' or x not in [1,2] group by DeviceId"))
 * //=> "SELECT TOP 5 deviceId, COUNT() FROM devices WHERE tags.[[group]] != 'a' OR x NIN [1, 2] GROUP BY deviceId"
 *
 * @throws {RangeError} only for a hand-built `Query` holding a name no query text can express
 *   (empty, containing `]]`, or ending in `]`), or a non-finite number.
 */
export function formatQuery(query: Query): string {
  const c = query.from;
  let out = 'SELECT ';
  if (query.top !== undefined) out += `TOP ${formatNumber(query.top)} `;
  if (query.select === '*') {
    out += '*';
  } else {
    let unnamed = 0;
    out += query.select
      .map((e) => {
        if (e.kind === 'path') {
          const text = writePath(c, e.path);
          return e.name === e.path[e.path.length - 1] ? text : `${text} AS ${writeName(e.name)}`;
        }
        const text = e.fn === 'COUNT' ? 'COUNT()' : `${e.fn}(${writePath(c, e.path)})`;
        if (e.name === `$${unnamed + 1}`) {
          unnamed++;
          return text;
        }
        return `${text} AS ${writeName(e.name)}`;
      })
      .join(', ');
  }
  out += ` FROM ${c}`;
  if (query.where !== undefined) out += ` WHERE ${formatExpr(query.where, c)}`;
  if (query.groupBy !== undefined) out += ` GROUP BY ${writePath(c, query.groupBy)}`;
  return out;
}

function writeName(name: string): string {
  return isBareName(name) ? name : writeEscaped(name);
}

// Precedence, loosest first: OR 1, AND 2, NOT 3, comparison and IN 4, + - 5, * / % 6, unary - 7, primary 8.
function precedence(e: Expr): number {
  switch (e.kind) {
    case 'or':
      return 1;
    case 'and':
      return 2;
    case 'not':
      return 3;
    case 'compare':
    case 'in':
      return 4;
    case 'arithmetic':
      return e.op === '+' || e.op === '-' ? 5 : 6;
    case 'negate':
      return 7;
    case 'constant':
      return typeof e.value === 'number' && (e.value < 0 || Object.is(e.value, -0)) ? 7 : 8;
    default:
      return 8;
  }
}

function formatExpr(e: Expr, c: Collection): string {
  const sub = (x: Expr, min: number): string => {
    const text = formatExpr(x, c);
    return precedence(x) < min ? `(${text})` : text;
  };
  switch (e.kind) {
    case 'constant':
      return formatConstant(e.value);
    case 'path':
      return writePath(c, e.path);
    case 'call':
      return `${e.fn}(${e.args.map((a) => formatExpr(a, c)).join(', ')})`;
    case 'or':
      return e.operands.map((o) => sub(o, 2)).join(' OR ');
    case 'and':
      return e.operands.map((o) => sub(o, 3)).join(' AND ');
    case 'not':
      return `NOT ${sub(e.operand, 3)}`;
    case 'compare':
      return `${sub(e.left, 5)} ${e.op} ${sub(e.right, 5)}`;
    case 'in':
      return `${sub(e.operand, 5)} ${e.negated ? 'NIN' : 'IN'} ${formatArray(e.values)}`;
    case 'arithmetic': {
      const p = precedence(e);
      return `${sub(e.left, p)} ${e.op} ${sub(e.right, p + 1)}`;
    }
    case 'negate':
      return `-${sub(e.operand, 8)}`;
  }
}

function formatConstant(v: QueryConstant): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return formatString(v);
  return formatArray(v);
}

/** `[` items `]`; a space after `[` when the first item is itself an array, since `[[` opens a name. */
function formatArray(items: readonly QueryConstant[]): string {
  const body = items.map(formatConstant).join(', ');
  return body.startsWith('[') ? `[ ${body}]` : `[${body}]`;
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`${n} cannot be written in a query`);
  return Object.is(n, -0) ? '-0' : String(n);
}

/** Single-quoted, with `\\`, `\'` and `\uXXXX` for control characters, surrogates and U+2028/9. */
function formatString(s: string): string {
  let out = "'";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    if (ch === "'" || ch === '\\') out += '\\' + ch;
    else if (
      code < 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      (code >= 0xd800 && code <= 0xdfff) ||
      code === 0x2028 ||
      code === 0x2029
    ) {
      out += '\\u' + code.toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + "'";
}
