import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byteSink, writeJson } from './jsonBytes.ts';

const utf8 = new TextEncoder();

/** `writeJson`'s bytes against `JSON.stringify`'s text encoded as UTF-8, from a small sink (it must grow). */
function expectSameBytes(value: unknown): void {
  const out = byteSink(1);
  writeJson(out, value);
  expect(Buffer.from(out.buf.subarray(0, out.pos)).equals(Buffer.from(utf8.encode(JSON.stringify(value))))).toBe(true);
}

/** Values JSON.stringify takes beyond JSON: undefined members, -0, fractions, NaN, dates, deep nesting. */
const extra: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme-ascii' }),
    fc.double(),
    fc.integer(),
    fc.constantFrom(-0, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 1e-7, null, true, false),
    fc.constant(undefined),
    fc.date({ noInvalidDate: true }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ unit: 'binary' }), fc.nat().map(String)), tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('writeJson', () => {
  it('writes the UTF-8 of JSON.stringify for JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), expectSameBytes), { numRuns: 500 });
  });

  it('and for what JSON.stringify takes beyond JSON (undefined members, -0, NaN, dates, integer keys)', () => {
    fc.assert(fc.property(fc.dictionary(fc.string(), extra), expectSameBytes), { numRuns: 500 });
  });

  it('writes class instances, null-prototype objects, toJSON and inherited keys as JSON.stringify does', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const bare = Object.assign(Object.create(null) as object, { b: 1, a: [2, undefined, () => 0] });
    const inherited = Object.assign(Object.create({ hidden: 1 }) as object, { shown: 2 });
    const withToJson = { toJSON: () => ({ replaced: true }) };
    expectSameBytes({ p: new Point(1, 2.5), bare, inherited, withToJson, s: Symbol('x'), f: () => 1 });
    expectSameBytes({ boxed: [Object(1), Object('s'), Object(false)] });
    expectSameBytes({ '2': 'two', '10': 'ten', a: 'a', '-1': 'minus', '01': 'zero-one' });
  });

  it('skips keys a plain object inherits, as JSON.stringify does (a polluted Object.prototype)', () => {
    const value = { own: { a: 1 } };
    const out = byteSink(1);
    let text: string;
    Object.defineProperty(Object.prototype, 'polluted', { value: 1, enumerable: true, configurable: true });
    try {
      writeJson(out, value);
      text = JSON.stringify(value);
    } finally {
      delete (Object.prototype as Record<string, unknown>)['polluted'];
    }
    expect(new TextDecoder().decode(out.buf.subarray(0, out.pos))).toBe(text);
  });

  it('writes values nested deeper than its fast path', () => {
    let deep: unknown = { leaf: 'x\u2028"' };
    for (let i = 0; i < 100; i++) deep = i % 2 === 0 ? { [`k${i}`]: deep } : [deep];
    expectSameBytes(deep);
  });

  it('throws what JSON.stringify throws', () => {
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    const out = byteSink(8);
    expect(() => writeJson(out, { a: cycle })).toThrow(TypeError);
    expect(() => writeJson(out, { a: 1n })).toThrow(TypeError);
  });
});
