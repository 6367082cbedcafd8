/**
 * Expressions compiled to closures over one document. The semantics, all total (nothing throws):
 *
 * | expression | result |
 * |---|---|
 * | path | the value, or `undefined` when any step is missing or not an object (values.ts `getPath`) |
 * | `a = b`, `!=`, `<`, `<=`, `>`, `>=` | a boolean when both are primitives of one type, else `undefined` |
 * | `a AND b`, `a OR b`, `NOT a` | Kleene logic; an operand that is not a boolean counts as unknown (`undefined`): `false AND ?` is false, `true OR ?` is true, `NOT ?` is unknown |
 * | `a IN [..]` | `undefined` when `a` is not a primitive; else true iff some item `= a` is true |
 * | `a NIN [..]` | `NOT (a IN [..])` |
 * | `+ - * / %`, unary `-` | numbers only; a non-number operand or a non-finite result (`1/0`) is `undefined` |
 * | `IS_DEFINED(a)` | `a` is not `undefined` (always a boolean, as are all `IS_*`) |
 * | `IS_NULL`, `IS_BOOL`, `IS_NUMBER`, `IS_STRING`, `IS_OBJECT`, `IS_ARRAY` | the value's JSON type; `undefined` is none of them |
 * | `IS_PRIMITIVE(a)` | null, boolean, number or string |
 * | `STARTSWITH(s, p)`, `ENDSWITH`, `CONTAINS` | case-sensitive, when both are strings; else `undefined` |
 */
import type { Expr } from '../query.ts';
import { compareValues, getPath, isPrimitiveKind, kindOf } from './values.ts';

export type Compiled = (doc: unknown) => unknown;

const truth = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);

export function compileExpr(e: Expr): Compiled {
  switch (e.kind) {
    case 'constant': {
      const v = e.value;
      return () => v;
    }
    case 'path': {
      const p = e.path;
      return (doc) => getPath(doc, p);
    }
    case 'compare': {
      const l = compileExpr(e.left);
      const r = compileExpr(e.right);
      const op = e.op;
      return (doc) => compareValues(op, l(doc), r(doc));
    }
    case 'and': {
      const parts = e.operands.map(compileExpr);
      return (doc) => {
        let result: boolean | undefined = true;
        for (const p of parts) {
          const v = truth(p(doc));
          if (v === false) return false;
          if (v === undefined) result = undefined;
        }
        return result;
      };
    }
    case 'or': {
      const parts = e.operands.map(compileExpr);
      return (doc) => {
        let result: boolean | undefined = false;
        for (const p of parts) {
          const v = truth(p(doc));
          if (v === true) return true;
          if (v === undefined) result = undefined;
        }
        return result;
      };
    }
    case 'not': {
      const o = compileExpr(e.operand);
      return (doc) => {
        const v = truth(o(doc));
        return v === undefined ? undefined : !v;
      };
    }
    case 'in': {
      const o = compileExpr(e.operand);
      const values = e.values;
      const negated = e.negated;
      return (doc) => {
        const v = o(doc);
        if (!isPrimitiveKind(kindOf(v))) return undefined;
        const found = values.some((c) => compareValues('=', v, c) === true);
        return negated ? !found : found;
      };
    }
    case 'arithmetic': {
      const l = compileExpr(e.left);
      const r = compileExpr(e.right);
      const op = e.op;
      return (doc) => {
        const a = l(doc);
        const b = r(doc);
        if (kindOf(a) !== 'number' || kindOf(b) !== 'number') return undefined;
        const x = a as number;
        const y = b as number;
        const out = op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : op === '/' ? x / y : x % y;
        return Number.isFinite(out) ? out : undefined;
      };
    }
    case 'negate': {
      const o = compileExpr(e.operand);
      return (doc) => {
        const v = o(doc);
        return kindOf(v) === 'number' ? -(v as number) : undefined;
      };
    }
    case 'call': {
      const args = e.args.map(compileExpr);
      const a = args[0]!;
      switch (e.fn) {
        case 'IS_DEFINED':
          return (doc) => kindOf(a(doc)) !== 'undefined';
        case 'IS_NULL':
          return (doc) => kindOf(a(doc)) === 'null';
        case 'IS_BOOL':
          return (doc) => kindOf(a(doc)) === 'boolean';
        case 'IS_NUMBER':
          return (doc) => kindOf(a(doc)) === 'number';
        case 'IS_STRING':
          return (doc) => kindOf(a(doc)) === 'string';
        case 'IS_OBJECT':
          return (doc) => kindOf(a(doc)) === 'object';
        case 'IS_ARRAY':
          return (doc) => kindOf(a(doc)) === 'array';
        case 'IS_PRIMITIVE':
          return (doc) => isPrimitiveKind(kindOf(a(doc)));
        case 'STARTSWITH':
        case 'ENDSWITH':
        case 'CONTAINS': {
          const b = args[1]!;
          const fn = e.fn;
          return (doc) => {
            const s = a(doc);
            const t = b(doc);
            if (typeof s !== 'string' || typeof t !== 'string') return undefined;
            return fn === 'STARTSWITH' ? s.startsWith(t) : fn === 'ENDSWITH' ? s.endsWith(t) : s.includes(t);
          };
        }
      }
    }
  }
}
