/**
 * Deterministic snapshot msgpack: round trip and key-order independence as properties (fast-check
 * prints the seed of a failure), golden bytes, encode-side refusals, and hostile-byte decoding.
 */
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { isTwinlogError, type TwinlogErrorCode } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SNAPSHOT_LIMITS } from './decodeLimits.ts';
import { decodeSnapshot, encodeSnapshot } from './encodeSnapshot.ts';

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const key = fc.string({ unit: 'binary', maxLength: 8 }).filter((k) => !FORBIDDEN.has(k));
const num = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
);

const { plain } = fc.letrec<{ plain: unknown }>((tie) => ({
  plain: fc.oneof(
    { depthSize: 'small', maxDepth: 6, depthIdentifier: 'plain' },
    fc.string({ unit: 'binary', maxLength: 12 }),
    num,
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 12 }),
    fc.array(tie('plain'), { maxLength: 4, depthIdentifier: 'plain' }),
    fc.dictionary(key, tie('plain'), { maxKeys: 5, noNullPrototype: true, depthIdentifier: 'plain' }),
  ),
}));

/** A deep copy of `v` whose maps get their keys inserted in an order drawn from `order`. */
function reorder(v: unknown, order: readonly number[]): unknown {
  let at = 0;
  const next = (): number => (order.length === 0 ? 0 : order[at++ % order.length]!);
  const go = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(go);
    if (x === null || typeof x !== 'object' || x instanceof Uint8Array) return x;
    const keys = Object.keys(x);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = next() % (i + 1);
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = go((x as Record<string, unknown>)[k]);
    return out;
  };
  return go(v);
}

function codeOf(fn: () => unknown): TwinlogErrorCode {
  try {
    fn();
  } catch (e) {
    if (isTwinlogError(e)) return e.code;
    throw new Error(`expected a TwinlogError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a TwinlogError, nothing was thrown');
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('encodeSnapshot / decodeSnapshot: laws', () => {
  it('decode(encode(x)) deep-equals x', () => {
    fc.assert(
      fc.property(plain, (x) => {
        expect(decodeSnapshot(encodeSnapshot(x))).toEqual(x);
      }),
      { numRuns: 1000 },
    );
  });

  it('encoding is independent of key insertion order', () => {
    fc.assert(
      fc.property(plain, fc.array(fc.nat(), { maxLength: 16 }), (x, order) => {
        const shuffled = reorder(x, order);
        expect(shuffled).toEqual(x);
        expect(hex(encodeSnapshot(shuffled))).toBe(hex(encodeSnapshot(x)));
      }),
      { numRuns: 1000 },
    );
  });

  it('equal bytes decode to equal values, and re-encode to the same bytes', () => {
    fc.assert(
      fc.property(plain, (x) => {
        const bytes = encodeSnapshot(x);
        expect(hex(encodeSnapshot(decodeSnapshot(bytes)))).toBe(hex(bytes));
      }),
      { numRuns: 500 },
    );
  });
});

describe('wire contract', () => {
  it('sorts keys by UTF-16 code units, at every level (golden bytes)', () => {
    const bytes = encodeSnapshot({ b: 1, a: { z: true, é: null, Z: 'x' }, '': [] });
    // 83 | a0 90 | a1 61 83 (a1 5a a1 78) (a1 7a c3) (a2 c3 a9 c0) | a1 62 01
    expect(hex(bytes)).toBe(hex(unhex('83 a0 90 a1 61 83 a1 5a a1 78 a1 7a c3 a2 c3 a9 c0 a1 62 01')));
    expect(Object.keys(msgpackDecode(bytes) as object)).toEqual(['', 'a', 'b']);
  });

  it('writes -0 as 0, integers in the smallest form and other numbers as float 64', () => {
    expect(hex(encodeSnapshot(-0))).toBe('00');
    expect(Object.is(decodeSnapshot(encodeSnapshot(-0)), 0)).toBe(true);
    expect(hex(encodeSnapshot(255))).toBe('ccff');
    expect(hex(encodeSnapshot(0.5))).toBe('cb3fe0000000000000');
    expect(hex(encodeSnapshot(2 ** 53))).toBe('cb4340000000000000');
  });

  it('writes bytes as bin, and reads them back as fresh Uint8Array copies', () => {
    const input = encodeSnapshot({ b: Buffer.from([1, 2, 3]) });
    expect(hex(input)).toBe('81a162c403010203');
    const out = decodeSnapshot(input) as { b: Uint8Array };
    expect(out.b.constructor).toBe(Uint8Array);
    input.fill(0);
    expect([...out.b]).toEqual([1, 2, 3]);
    const root = encodeSnapshot(new Uint8Array([9]));
    const rootOut = decodeSnapshot(root) as Uint8Array;
    root.fill(0);
    expect([...rootOut]).toEqual([9]);
  });

  it('decoded maps are plain objects', () => {
    const out = decodeSnapshot(encodeSnapshot({ a: { b: [{}] } })) as { a: { b: object[] } };
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(out.a.b[0])).toBe(Object.prototype);
  });

  it('decodes unsorted input too (it reads any plain msgpack)', () => {
    expect(decodeSnapshot(msgpackEncode({ b: 1, a: 2 }))).toEqual({ a: 2, b: 1 });
  });
});

describe('encodeSnapshot: refusals', () => {
  class Box {
    x = 1;
  }
  const typeCases: [string, unknown][] = [
    ['undefined', undefined],
    ['undefined in a map', { a: undefined }],
    // eslint-disable-next-line no-sparse-arrays -- the hole is the case under test
    ['a hole in an array', [1, , 2]],
    ['NaN', NaN],
    ['Infinity', { a: [Infinity] }],
    ['a bigint', 1n],
    ['a symbol', Symbol('s')],
    ['a function', { f: () => 1 }],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a Set', { s: new Set() }],
    ['a class instance', new Box()],
    ['an Int16Array', new Int16Array(2)],
    ['a DataView', new DataView(new ArrayBuffer(2))],
  ];
  it.each(typeCases)('%s → VALUE_TYPE_INVALID', (_name, value) => {
    expect(codeOf(() => encodeSnapshot(value))).toBe('VALUE_TYPE_INVALID');
  });

  it('forbidden keys → CODEC_FORBIDDEN_KEY', () => {
    expect(codeOf(() => encodeSnapshot(JSON.parse('{"a":{"__proto__":1}}')))).toBe('CODEC_FORBIDDEN_KEY');
    expect(codeOf(() => encodeSnapshot({ constructor: 1 }))).toBe('CODEC_FORBIDDEN_KEY');
    expect(codeOf(() => encodeSnapshot([{ prototype: 1 }]))).toBe('CODEC_FORBIDDEN_KEY');
  });

  it('depth beyond the decoder default → CODEC_LIMIT_EXCEEDED (at the bound and one past)', () => {
    const deep = (n: number): unknown => (n === 1 ? [] : [deep(n - 1)]);
    expect(DEFAULT_SNAPSHOT_LIMITS.maxDepth).toBe(64);
    expect(decodeSnapshot(encodeSnapshot(deep(64)))).toEqual(deep(64));
    expect(codeOf(() => encodeSnapshot(deep(65)))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('accepts null-prototype objects', () => {
    const o = Object.assign(Object.create(null) as Record<string, unknown>, { b: 2, a: 1 });
    expect(hex(encodeSnapshot(o))).toBe(hex(encodeSnapshot({ a: 1, b: 2 })));
  });
});

describe('decodeSnapshot: hostile bytes', () => {
  it('documents its defaults', () => {
    expect(DEFAULT_SNAPSHOT_LIMITS).toEqual({
      maxBytes: 16_777_216,
      maxDepth: 64,
      maxStrLength: 1_048_576,
      maxBinLength: 1_048_576,
      maxArrayLength: 1_048_576,
      maxMapLength: 1_048_576,
    });
  });

  const cases: [string, Uint8Array, TwinlogErrorCode][] = [
    ['empty input', new Uint8Array(), 'CODEC_TRUNCATED'],
    ['a map cut short', unhex('82 a161 01 a162'), 'CODEC_TRUNCATED'],
    ['a str cut short', unhex('a5 6869'), 'CODEC_TRUNCATED'],
    ['trailing bytes', unhex('01 02'), 'CODEC_BAD_DATA'],
    ['byte 0xc1', unhex('c1'), 'CODEC_BAD_DATA'],
    ['an ext (timestamp)', msgpackEncode(new Date(0)), 'CODEC_BAD_DATA'],
    ['an integer map key', unhex('81 01 02'), 'CODEC_BAD_DATA'],
    ['a repeated key', unhex('82 a161 01 a161 02'), 'CODEC_BAD_DATA'],
    ['a repeated key, nested', unhex('91 82 a161 01 a161 02'), 'CODEC_BAD_DATA'],
    ['NaN', unhex('cb 7ff8000000000000'), 'CODEC_BAD_DATA'],
    ['-Infinity (float 32)', unhex('91 ca ff800000'), 'CODEC_BAD_DATA'],
    ['__proto__ key', unhex('81 a9' + hex(Buffer.from('__proto__')) + ' 80'), 'CODEC_FORBIDDEN_KEY'],
    ['constructor key, nested', unhex('91 81 ab' + hex(Buffer.from('constructor')) + ' 01'), 'CODEC_FORBIDDEN_KEY'],
    ['prototype key', unhex('81 a9' + hex(Buffer.from('prototype')) + ' 01'), 'CODEC_FORBIDDEN_KEY'],
    ['str 32 claiming 4 GiB', unhex('dbffffffff'), 'CODEC_LIMIT_EXCEEDED'],
    ['bin 32 claiming 4 GiB', unhex('c6ffffffff'), 'CODEC_LIMIT_EXCEEDED'],
  ];
  it.each(cases)('%s → %s', (_name, bytes, code) => {
    expect(codeOf(() => decodeSnapshot(bytes))).toBe(code);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('limits at the bound and one past', () => {
    const value = { s: 'abcd', b: new Uint8Array(3), a: [1, 2], m: { x: { y: 1 } } };
    const bytes = encodeSnapshot(value);
    const ok = {
      maxBytes: bytes.length,
      maxStrLength: 4,
      maxBinLength: 3,
      maxArrayLength: 2,
      maxMapLength: 4,
      maxDepth: 3,
    };
    expect(decodeSnapshot(bytes, ok)).toEqual(value);
    for (const k of Object.keys(ok) as (keyof typeof ok)[]) {
      expect(
        codeOf(() => decodeSnapshot(bytes, { ...ok, [k]: ok[k] - 1 })),
        k,
      ).toBe('CODEC_LIMIT_EXCEEDED');
    }
  });

  it('fuzz: 10 000 random byte arrays give a value or a CODEC_* error, and the decoder keeps working', () => {
    const good = encodeSnapshot({ a: [1, 'x', new Uint8Array(1)] });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          // whatever decodes re-encodes, stably (compared as bytes: a float -0 is written back as 0)
          const again = encodeSnapshot(decodeSnapshot(bytes));
          expect(hex(encodeSnapshot(decodeSnapshot(again)))).toBe(hex(again));
        } catch (e) {
          if (!isTwinlogError(e) || !e.code.startsWith('CODEC_')) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
    expect(decodeSnapshot(good)).toEqual({ a: [1, 'x', new Uint8Array(1)] });
  });

  it('fuzz: truncations and single-byte mutations of valid encodings', () => {
    fc.assert(
      fc.property(plain, fc.nat(), fc.integer({ min: 0, max: 255 }), (x, at, byte) => {
        const bytes = encodeSnapshot(x);
        expect(codeOf(() => decodeSnapshot(bytes.subarray(0, at % bytes.length)))).toBe('CODEC_TRUNCATED');
        const mutated = bytes.slice();
        mutated[at % bytes.length] = byte;
        try {
          decodeSnapshot(mutated);
        } catch (e) {
          if (!isTwinlogError(e) || !e.code.startsWith('CODEC_')) throw e;
        }
        expect(decodeSnapshot(bytes)).toEqual(x);
      }),
      { numRuns: 3_000 },
    );
  });
});

describe('JSDoc examples', () => {
  it('encodeSnapshot', () => {
    const a = encodeSnapshot({ b: 1, a: [true, null] });
    const b = encodeSnapshot({ a: [true, null], b: 1 });
    expect(hex(a)).toBe(hex(b));
    expect(decodeSnapshot(a)).toEqual({ a: [true, null], b: 1 });
  });

  it('decodeSnapshot with a larger maxBytes', () => {
    const bytes = encodeSnapshot({ big: 'x'.repeat(100) });
    expect(decodeSnapshot(bytes, { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes: 64 * 1024 * 1024 })).toEqual({
      big: 'x'.repeat(100),
    });
  });
});
