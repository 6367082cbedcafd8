import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTwinlogError, type TwinlogError, type TwinlogErrorCode } from './errors.ts';
import type { Section } from './event.ts';
import type { JsonObject, Patch } from './json.ts';
import {
  TWIN_LIMITS,
  assertSectionFits,
  assertValidPatch,
  sectionLimit,
  sectionSize,
  twinByteLength,
  utf8ByteLength,
  validatePatch,
} from './validatePatch.ts';

/** The error of an invalid patch (fails the test when the patch is valid). */
function errorOf(patch: unknown, section: Section = 'desired'): TwinlogError {
  const r = validatePatch(section, patch);
  if (r.ok) throw new Error('expected the patch to be rejected');
  return r.error;
}

function expectOk(patch: unknown, section: Section = 'desired'): void {
  const r = validatePatch(section, patch);
  expect(r.ok ? 'ok' : `${r.error.code} at ${JSON.stringify(r.error.path)}`).toBe('ok');
}

function expectError(
  patch: unknown,
  code: TwinlogErrorCode,
  path: readonly string[],
  section: Section = 'desired',
): TwinlogError {
  const e = errorOf(patch, section);
  expect({ code: e.code, path: e.path }).toEqual({ code, path });
  expect(() => assertValidPatch(section, patch)).toThrow(e.message);
  return e;
}

/** `{ k0: { k1: … { leaf } } }` with `levels` nested objects below the root. */
function nestObjects(levels: number, leaf: unknown = 1): Record<string, unknown> {
  let node: unknown = leaf;
  for (let i = levels; i >= 1; i--) node = { [`k${i}`]: node };
  return { root: node };
}

/** `{ a: [[…[leaf]…]] }` with `levels` nested arrays below the root. */
function nestArrays(levels: number, leaf: unknown = 1): Record<string, unknown> {
  let node: unknown = leaf;
  for (let i = 0; i < levels; i++) node = [node];
  return { a: node };
}

describe('TWIN_LIMITS', () => {
  it("holds IoT Hub's documented numbers", () => {
    expect(TWIN_LIMITS).toEqual({
      maxKeyBytes: 1024,
      maxStringBytes: 4096,
      maxDepth: 10,
      minInteger: -4503599627370496,
      maxInteger: 4503599627370495,
      maxTagsBytes: 8192,
      maxDesiredBytes: 32768,
      maxReportedBytes: 32768,
    });
    expect(TWIN_LIMITS.maxInteger).toBe(2 ** 52 - 1);
    expect(TWIN_LIMITS.minInteger).toBe(-(2 ** 52));
    expect(Object.isFrozen(TWIN_LIMITS)).toBe(true);
    expect([sectionLimit('tags'), sectionLimit('desired'), sectionLimit('reported')]).toEqual([8192, 32768, 32768]);
  });
});

describe('utf8ByteLength', () => {
  it('counts code points by UTF-8 width', () => {
    expect(utf8ByteLength('')).toBe(0);
    expect(utf8ByteLength('a')).toBe(1);
    expect(utf8ByteLength('é')).toBe(2);
    expect(utf8ByteLength('€')).toBe(3);
    expect(utf8ByteLength('😀')).toBe(4);
    expect(utf8ByteLength('aé€😀')).toBe(10);
    expect(utf8ByteLength('\uD800')).toBe(3); // lone high surrogate → U+FFFD
    expect(utf8ByteLength('\uDC00\uD800')).toBe(6); // reversed pair is two lone surrogates
  });

  it('equals TextEncoder for arbitrary strings, lone surrogates included', () => {
    const enc = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(utf8ByteLength(a)).toBe(enc.encode(a).length);
        expect(utf8ByteLength(b)).toBe(enc.encode(b).length);
      }),
    );
  });

  it('twinByteLength skips C0 and C1 control characters only', () => {
    expect(twinByteLength('a\u0000\u001f\u007f\u0080\u0085\u009fb')).toBe(2);
    expect(twinByteLength('\u00a0')).toBe(2); // NBSP is not C1
    expect(twinByteLength(' ')).toBe(1);
  });
});

describe('validatePatch: shape', () => {
  it('accepts a typical patch and returns the same object', () => {
    const patch = { fw: '1.2', battery: 60, on: true, old: null, nested: { a: [1, 'x', { b: false }] } };
    const r = validatePatch('desired', patch);
    expect(r).toEqual({ ok: true, value: patch });
    expect(r.ok && r.value).toBe(patch);
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'x'],
    ['a number', 1],
    ['undefined', undefined],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
  ])('rejects %s as PATCH_NOT_OBJECT', (_name, patch) => {
    expectError(patch, 'PATCH_NOT_OBJECT', []);
  });

  it('accepts the empty patch and null-prototype objects', () => {
    expectOk({});
    const o = Object.create(null) as Record<string, unknown>;
    o['a'] = { b: 1 };
    expectOk(o);
  });
});

describe('validatePatch: keys', () => {
  it('accepts a key of 1024 bytes and rejects 1025', () => {
    expectOk({ ['k'.repeat(1024)]: 1 });
    const e = expectError({ ['k'.repeat(1025)]: 1 }, 'KEY_TOO_LONG', ['k'.repeat(1025)]);
    expect(e.details).toEqual({ limit: 1024, actual: 1025 });
  });

  it('counts multi-byte keys in UTF-8 bytes', () => {
    expectOk({ ['é'.repeat(512)]: 1 }); // 1024 bytes, 512 characters
    expectError({ ['é'.repeat(512) + 'a']: 1 }, 'KEY_TOO_LONG', ['é'.repeat(512) + 'a']);
    expectOk({ ['😀'.repeat(256)]: 1 }); // 1024 bytes
    expect(errorOf({ ['😀'.repeat(256) + 'a']: 1 }).details).toEqual({ limit: 1024, actual: 1025 });
    expectOk({ ['€'.repeat(341) + 'a']: 1 }); // 1023 + 1
    expectError({ ['€'.repeat(342)]: 1 }, 'KEY_TOO_LONG', ['€'.repeat(342)]); // 1026
  });

  it('checks nested keys and reports their path', () => {
    expectError({ a: { b: { ['x'.repeat(1025)]: 1 } } }, 'KEY_TOO_LONG', ['a', 'b', 'x'.repeat(1025)]);
    expectError({ a: [{ 'b.c': 1 }] }, 'KEY_INVALID', ['a', '0', 'b.c']);
  });

  it.each([
    ['$', 'a$b', 'U+0024'],
    ['leading $', '$abc', 'U+0024'],
    ['.', 'a.b', 'U+002E'],
    ['space', 'a b', 'U+0020'],
    ['U+0000', 'a\u0000', 'U+0000'],
    ['U+001F', '\u001fa', 'U+001F'],
    ['U+007F', 'a\u007fb', 'U+007F'],
    ['U+0080', 'a\u0080b', 'U+0080'],
    ['U+0085', 'a\u0085b', 'U+0085'],
    ['U+009F', 'a\u009fb', 'U+009F'],
  ])('rejects a key containing %s', (_name, key, char) => {
    const e = expectError({ ok: 1, deep: { [key]: 1 } }, 'KEY_INVALID', ['deep', key]);
    expect(e.details).toMatchObject({ reason: 'character', actual: char });
    expect(e.message).not.toContain(';');
  });

  it('allows characters next to the forbidden ranges', () => {
    expectOk({ 'a\u00a0b': 1, 'a-b_c:d': 1, ÿ: 1, '😀': 1, 'a!b': 1 });
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects the reserved key %s', (key) => {
    const patch = JSON.parse(`{"a":{"${key}":{"x":1}}}`) as unknown;
    const e = expectError(patch, 'KEY_INVALID', ['a', key]);
    expect(e.details).toMatchObject({ reason: 'reserved' });
  });

  it('rejects the empty key', () => {
    expectError({ a: { '': 1 } }, 'KEY_INVALID', ['a', '']);
  });

  it('keeps messages free of ";" even when keys contain it', () => {
    expect(errorOf({ 'a;b.c': 1 }).message).not.toContain(';');
  });
});

describe('validatePatch: depth', () => {
  it('accepts the IoT Hub doc example: one…ten objects then a leaf', () => {
    const patch = {
      one: {
        two: { three: { four: { five: { six: { seven: { eight: { nine: { ten: { property: 'value' } } } } } } } } },
      },
    };
    expectOk(patch);
  });

  it('accepts 10 object levels and rejects 11', () => {
    expectOk(nestObjects(10)); // 10 objects, then a scalar leaf
    expectOk(nestObjects(9, {})); // the 10th container is empty
    const e = expectError(nestObjects(10, {}), 'DEPTH_EXCEEDED', [
      'root',
      'k1',
      'k2',
      'k3',
      'k4',
      'k5',
      'k6',
      'k7',
      'k8',
      'k9',
      'k10',
    ]);
    expect(e.details).toEqual({ limit: 10, actual: 11 });
    expectError(nestObjects(10, { x: 1 }), 'DEPTH_EXCEEDED', [
      'root',
      'k1',
      'k2',
      'k3',
      'k4',
      'k5',
      'k6',
      'k7',
      'k8',
      'k9',
      'k10',
    ]);
  });

  it('accepts 10 array levels and rejects 11', () => {
    expectOk(nestArrays(10));
    const e = expectError(nestArrays(11), 'DEPTH_EXCEEDED', ['a', ...Array<string>(10).fill('0')]);
    expect(e.details).toEqual({ limit: 10, actual: 11 });
  });

  it('counts objects and arrays together', () => {
    expectOk({ a: [{ b: [{ c: [{ d: [{ e: [{ f: 1 }] }] }] }] }] }); // 10 containers
    expectError({ a: [{ b: [{ c: [{ d: [{ e: [{ f: [1] }] }] }] }] }] }, 'DEPTH_EXCEEDED', [
      'a',
      '0',
      'b',
      '0',
      'c',
      '0',
      'd',
      '0',
      'e',
      '0',
      'f',
    ]);
  });

  it('reports DEPTH_EXCEEDED for 100000-deep objects and arrays without overflowing the stack', () => {
    let o: unknown = 1;
    for (let i = 0; i < 100_000; i++) o = { a: o };
    let a: unknown = 1;
    for (let i = 0; i < 100_000; i++) a = [a];
    expect(errorOf(o).code).toBe('DEPTH_EXCEEDED');
    expect(errorOf(o).path).toHaveLength(11);
    expect(errorOf({ x: a }).code).toBe('DEPTH_EXCEEDED');
    // A huge depth limit walks iteratively instead of recursing.
    expect(validatePatch('desired', o, { maxDepth: 1e9, maxDesiredBytes: 1e9 }).ok).toBe(true);
  });
});

describe('validatePatch: values', () => {
  it('accepts a string of 4096 bytes and rejects 4097', () => {
    expectOk({ s: 'x'.repeat(4096) });
    const e = expectError({ s: 'x'.repeat(4097) }, 'STRING_TOO_LONG', ['s']);
    expect(e.details).toEqual({ limit: 4096, actual: 4097 });
    expect(e.message).toContain('4096 bytes');
  });

  it('counts strings in UTF-8 bytes, control characters included', () => {
    expectOk({ s: 'é'.repeat(2048) });
    expectError({ s: 'é'.repeat(2048) + 'a' }, 'STRING_TOO_LONG', ['s']);
    expectOk({ s: '😀'.repeat(1024) });
    expectError({ s: '😀'.repeat(1024) + '\u0000' }, 'STRING_TOO_LONG', ['s']);
    expectError({ a: [1, 'x'.repeat(5000)] }, 'STRING_TOO_LONG', ['a', '1']);
  });

  it('accepts integers at ±2^52 bounds and rejects one past', () => {
    expectOk({ max: 4503599627370495, min: -4503599627370496, zero: -0 });
    expect(errorOf({ n: 4503599627370496 }).details).toMatchObject({
      limit: 4503599627370495,
      actual: 4503599627370496,
    });
    expectError({ n: 4503599627370496 }, 'NUMBER_OUT_OF_RANGE', ['n']);
    expectError({ n: -4503599627370497 }, 'NUMBER_OUT_OF_RANGE', ['n']);
    expectError({ a: [Number.MAX_SAFE_INTEGER] }, 'NUMBER_OUT_OF_RANGE', ['a', '0']);
    expectError({ n: 1e300 }, 'NUMBER_OUT_OF_RANGE', ['n']);
  });

  it('allows finite non-integers and rejects NaN and infinities', () => {
    expectOk({ a: 0.5, b: -1e-300, c: 4503599627370494.5, d: Number.MIN_VALUE });
    expectError({ n: NaN }, 'NUMBER_OUT_OF_RANGE', ['n']);
    expectError({ n: Infinity }, 'NUMBER_OUT_OF_RANGE', ['n']);
    expectError({ n: [-Infinity] }, 'NUMBER_OUT_OF_RANGE', ['n', '0']);
  });

  it('allows null as an object member (delete), also nested', () => {
    expectOk({ a: null, b: { c: null } });
  });

  it('rejects null in arrays and in objects inside arrays', () => {
    expectError({ a: [1, null] }, 'NULL_IN_ARRAY', ['a', '1']);
    expectError({ a: [{ b: 1 }, { c: { d: null } }] }, 'NULL_IN_ARRAY', ['a', '1', 'c', 'd']);
    expectError({ a: [[null]] }, 'NULL_IN_ARRAY', ['a', '0', '0']);
  });

  it.each([
    ['undefined', undefined, 'undefined'],
    ['bigint', 1n, 'bigint'],
    ['function', () => 1, 'function'],
    ['symbol', Symbol('s'), 'symbol'],
    ['Date', new Date(0), 'Date'],
    ['Uint8Array', new Uint8Array(2), 'Uint8Array'],
    ['Map', new Map(), 'Map'],
    ['class instance', new (class Foo {})(), 'Object'],
    ['boxed string', Object('x') as unknown, 'String'],
  ])('rejects a %s value', (_name, value, actual) => {
    const e = expectError({ a: { b: value } }, 'VALUE_TYPE_INVALID', ['a', 'b']);
    expect(e.details).toEqual({ actual });
  });

  it('rejects array holes and undefined elements', () => {
    // eslint-disable-next-line no-sparse-arrays
    expectError({ a: [1, , 3] }, 'VALUE_TYPE_INVALID', ['a', '1']);
    expectError({ a: [undefined] }, 'VALUE_TYPE_INVALID', ['a', '0']);
  });
});

describe('validatePatch: first error wins', () => {
  it('walks depth-first in key order, a key before its value', () => {
    expectError({ a: { b: [1, null] }, 'c.d': 1 }, 'NULL_IN_ARRAY', ['a', 'b', '1']);
    expectError({ 'c.d': 1, a: { b: [1, null] } }, 'KEY_INVALID', ['c.d']);
    expectError({ 'bad key': 'x'.repeat(5000) }, 'KEY_INVALID', ['bad key']);
    expectError({ a: 'x'.repeat(5000), b: NaN }, 'STRING_TOO_LONG', ['a']);
  });

  it('checks the size after the structure', () => {
    expectError(
      { big: 'x'.repeat(4000), t: ['y'.repeat(4000), 'z'.repeat(4000)], bad: NaN },
      'NUMBER_OUT_OF_RANGE',
      ['bad'],
      'tags',
    );
  });
});

describe('validatePatch: section size', () => {
  /** A patch of exactly `size` bytes: keys k0… with 4000-byte strings, then one filler string. */
  function patchOfSize(size: number): Record<string, string> {
    const out: Record<string, string> = {};
    let left = size;
    for (let i = 0; left > 0; i++) {
      const key = `k${i}`;
      const take = Math.min(4000, left - key.length);
      out[key] = 'x'.repeat(Math.max(0, take));
      left -= key.length + Math.max(0, take);
    }
    return out;
  }

  it.each([
    ['tags', 8192],
    ['desired', 32768],
    ['reported', 32768],
  ] as const)('accepts a %s patch of %i bytes and rejects one byte more', (section, limit) => {
    const atLimit = patchOfSize(limit);
    expect(sectionSize(atLimit)).toBe(limit);
    expectOk(atLimit, section);
    const over = patchOfSize(limit + 1);
    expect(sectionSize(over)).toBe(limit + 1);
    const e = expectError(over, 'SECTION_TOO_LARGE', [], section);
    expect(e.details).toEqual({ section, limit, actual: limit + 1 });
  });

  it('ignores null members when measuring a patch', () => {
    const p: Record<string, unknown> = patchOfSize(8192);
    p['deleted'] = null;
    p['nested'] = { gone: null };
    expect(validatePatch('tags', p).ok).toBe(false); // "nested" itself counts 6
    delete p['nested'];
    expectOk(p, 'tags');
  });

  it('honours overridden limits', () => {
    expect(validatePatch('tags', { a: 'x' }, { maxTagsBytes: 1 }).ok).toBe(false);
    expect(validatePatch('tags', { ['k'.repeat(2000)]: 1 }, { maxKeyBytes: 2000 }).ok).toBe(true);
    expect(validatePatch('desired', { n: 2 ** 53 }, { maxInteger: 2 ** 53 }).ok).toBe(true);
  });
});

describe('sectionSize', () => {
  it('counts the IoT Hub way', () => {
    expect(sectionSize({})).toBe(0);
    expect(sectionSize({ a: 'xy', n: 1, b: true, $version: 3 })).toBe(17);
    expect(sectionSize({ ab: { c: false } })).toBe(2 + 1 + 4);
    expect(sectionSize({ a: [1, 'xyz', true, { b: 2 }, [3]] })).toBe(1 + 8 + 3 + 4 + (1 + 8) + 8);
    expect(sectionSize({ é: '€😀' })).toBe(2 + 7);
    expect(sectionSize({ a: 'x\u0000\u0085y' })).toBe(3);
    expect(sectionSize({ a: null, b: { c: null } })).toBe(1);
  });

  it('ignores $metadata and $version as GET /twins returns them', () => {
    const desired: JsonObject = {
      fw: '1.2',
      $metadata: { $lastUpdated: '2023-10-12T13:38:52.3108419Z', $lastUpdatedVersion: 4, fw: { $lastUpdated: 'x' } },
      $version: 4,
    };
    expect(sectionSize(desired)).toBe(2 + 3);
  });

  it('equals the size validatePatch enforces', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 4 }).filter((k) => !/[$. ]/.test(k)),
          fc.jsonValue({ maxDepth: 3 }),
        ),
        (p) => {
          const r = validatePatch('desired', p, { maxDesiredBytes: sectionSize(p as Patch) });
          if (!r.ok) expect(r.error.code).not.toBe('SECTION_TOO_LARGE');
        },
      ),
    );
  });

  it('handles 100000-deep values without overflowing the stack', () => {
    let o: unknown = 'x';
    for (let i = 0; i < 100_000; i++) o = { a: [o] };
    expect(sectionSize(o as JsonObject)).toBe(100_001);
  });
});

describe('assertSectionFits', () => {
  const big = (n: number): JsonObject => ({ s: 'x'.repeat(n - 1) }); // sectionSize = n

  it('passes at the limit and refuses growth past it', () => {
    expect(() => assertSectionFits('tags', {}, big(8192))).not.toThrow();
    expect(() => assertSectionFits('desired', {}, big(32768))).not.toThrow();
    expect(() => assertSectionFits('reported', {}, big(32768))).not.toThrow();
    for (const [section, limit] of [
      ['tags', 8192],
      ['desired', 32768],
      ['reported', 32768],
    ] as const) {
      let caught: unknown;
      try {
        assertSectionFits(section, big(limit), big(limit + 1));
      } catch (e) {
        caught = e;
      }
      expect(isTwinlogError(caught, 'SECTION_TOO_LARGE')).toBe(true);
      expect((caught as TwinlogError).details).toEqual({ section, limit, actual: limit + 1, before: limit });
      expect((caught as TwinlogError).path).toEqual([]);
    }
  });

  it('lets an oversized section shrink or stay the same size', () => {
    expect(() => assertSectionFits('tags', big(9000), big(8500))).not.toThrow();
    expect(() => assertSectionFits('tags', big(9000), big(9000))).not.toThrow();
    expect(() => assertSectionFits('tags', big(9000), big(9001))).toThrow(/8192/);
  });
});

describe('validatePatch: properties', () => {
  it('never throws and agrees with assertValidPatch for arbitrary input', () => {
    const agree = (input: unknown): void => {
      const r = validatePatch('desired', input);
      let threw: unknown;
      try {
        assertValidPatch('desired', input);
      } catch (e) {
        threw = e;
      }
      if (r.ok) expect(threw).toBeUndefined();
      else {
        expect(isTwinlogError(threw, r.error.code)).toBe(true);
        expect((threw as TwinlogError).path).toEqual(r.error.path);
        expect(Array.isArray(r.error.path)).toBe(true);
      }
    };
    fc.assert(fc.property(fc.anything(), agree), { numRuns: 500 });
    fc.assert(
      fc.property(
        fc.anything({
          withNullPrototype: true,
          withBigInt: true,
          withDate: true,
          withTypedArray: true,
          withSparseArray: true,
          withMap: true,
          withSet: true,
          withBoxedValues: true,
        }),
        agree,
      ),
      { numRuns: 500 },
    );
    fc.assert(fc.property(fc.jsonValue(), agree), { numRuns: 500 });
    fc.assert(fc.property(fc.dictionary(fc.string(), fc.jsonValue()), agree), { numRuns: 500 });
  });

  it('accepts every JSON object with valid keys and small values', () => {
    // eslint-disable-next-line no-control-regex -- control characters are what the filter leaves out
    const unsafe = /[$. \u0000-\u001f\u007f-\u009f]/;
    const key = fc
      .string({ minLength: 1, maxLength: 8 })
      .filter((k) => !unsafe.test(k) && !['__proto__', 'constructor', 'prototype'].includes(k));
    const leaf = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.boolean(),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', maxDepth: 4 },
        leaf,
        fc.array(tie('tree'), { maxLength: 3 }),
        fc.dictionary(key, tie('tree'), { maxKeys: 3 }),
      ),
    }));
    fc.assert(
      fc.property(fc.dictionary(key, fc.oneof(tree, fc.constant(null)), { maxKeys: 4 }), (p) => {
        expect(validatePatch('desired', p).ok).toBe(true);
      }),
    );
  });
});

describe('validatePatch: fast path and explaining walk agree', () => {
  it('gives the same verdict with the fast path on (depth limit 10) and off (depth limit 65) for shallow inputs', () => {
    const key = fc.oneof(
      fc.constantFrom('a', 'b', 'x y', '$v', 'a.b', 'é', '__proto__', ''),
      fc.string({ maxLength: 4 }),
    );
    const leaf = fc.oneof(
      fc.constant(null),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.string({ maxLength: 5 }),
      fc.constant(2 ** 53),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(key, tie('node'), { maxKeys: 3 }),
      ),
    })).node;
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 4 }), (patch) => {
        const depth = (v: unknown): number =>
          typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0;
        fc.pre(depth(patch) <= 9);
        const fast = validatePatch('desired', patch);
        const slow = validatePatch('desired', patch, { maxDepth: 65 });
        expect(fast.ok).toBe(slow.ok);
        if (!fast.ok && !slow.ok) expect(fast.error.code).toBe(slow.error.code);
      }),
      { numRuns: 3000 },
    );
  });
});
