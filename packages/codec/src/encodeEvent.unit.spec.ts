/**
 * The event envelope: round-trip and stamp-order laws (fast-check; a failure prints its seed and
 * path, replay with `fc.assert(…, { seed, path })`), golden bytes, every error code, limits at the
 * bound and one past, upcasting, and a fuzz suite over hostile bytes.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import {
  ENVELOPE_VERSION,
  MAX_COUNTER,
  MAX_WALL,
  TwinlogError,
  encodeHlc,
  isTwinlogError,
  jsonEquals,
  type Hlc,
  type Json,
  type Patch,
  type TwinEvent,
  type TwinlogErrorCode,
} from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENVELOPE_UPCASTERS, type Upcasters } from './envelopeUpcasters.ts';
import { DEFAULT_EVENT_LIMITS } from './decodeLimits.ts';
import { decodeEvent, encodeEvent, safeDecodeEvent, type DecodeOptions } from './encodeEvent.ts';

// ── generators ─────────────────────────────────────────────────────────────────────────────────

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
/** Any Unicode text (well-formed: msgpack strings are UTF-8). */
const text = (maxLength = 12): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });
const key = text(8).filter((k) => !FORBIDDEN.has(k));

/** JSON numbers as the codec keeps them: finite, `-0` normalised (it is written as `0`). */
const jsonNumber = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(2 ** 52, -(2 ** 52), 2 ** 32, -(2 ** 31) - 1, 0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
);

/**
 * Any JSON-like value the codec carries, `null` in arrays included (core's `Json` type excludes it
 * there, as IoT Hub does, but that is `validatePatch`'s rule, not the codec's).
 */
const { json } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', maxDepth: 6, depthIdentifier: 'json' },
    text(),
    jsonNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4, depthIdentifier: 'json' }),
    fc.dictionary(key, tie('json'), { maxKeys: 4, noNullPrototype: true, depthIdentifier: 'json' }),
  ),
}));
const patchArb: fc.Arbitrary<Patch> = fc.dictionary(key, json, {
  maxKeys: 5,
  noNullPrototype: true,
}) as fc.Arbitrary<Patch>;

const hlcArb: fc.Arbitrary<Hlc> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: MAX_WALL }), fc.constantFrom(0, MAX_WALL, 1_700_000_000_000)),
  counter: fc.oneof(fc.integer({ min: 0, max: MAX_COUNTER }), fc.constantFrom(0, MAX_COUNTER)),
});

const seqArb = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1));

const eventArb: fc.Arbitrary<TwinEvent> = fc.record(
  {
    v: fc.constant(ENVELOPE_VERSION),
    id: fc.record({ writer: text(), seq: seqArb }),
    deviceId: text(),
    section: fc.constantFrom('tags', 'desired', 'reported', 'create', 'delete'),
    op: fc.constantFrom('merge', 'replace'),
    patch: patchArb,
    stamp: hlcArb,
    cond: fc.record({ ifMatch: text(), ifVersion: seqArb }, { requiredKeys: [] }),
    actor: text(),
    corr: text(),
  },
  { requiredKeys: ['v', 'id', 'deviceId', 'section', 'op', 'patch', 'stamp', 'actor'] },
);

// ── helpers ────────────────────────────────────────────────────────────────────────────────────

const EXAMPLE: TwinEvent = {
  v: 1,
  id: { writer: 'gw', seq: 7 },
  deviceId: 'd1',
  section: 'desired',
  op: 'merge',
  patch: { t: 21 },
  stamp: { wall: 1_700_000_000_000, counter: 3 },
  actor: 'app',
};
const EXAMPLE_BYTES = encodeEvent(EXAMPLE);

/** The wire map of EXAMPLE, to tweak field by field. */
function wire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    id: ['gw', 7],
    deviceId: 'd1',
    section: 'desired',
    op: 'merge',
    patch: { t: 21 },
    stamp: encodeHlc(EXAMPLE.stamp),
    actor: 'app',
    ...overrides,
  };
}

/** Hand-built msgpack map: keys in the given order, duplicates and forbidden keys allowed. */
function mapBytes(entries: readonly (readonly [unknown, unknown])[]): Uint8Array {
  if (entries.length >= 16) throw new Error('fixmap only');
  const parts = [Uint8Array.of(0x80 | entries.length)];
  for (const [k, v] of entries) parts.push(msgpackEncode(k), msgpackEncode(v));
  return concat(...parts);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** The code of the TwinlogError `fn` throws; fails the test if it throws anything else or nothing. */
function codeOf(fn: () => unknown): TwinlogErrorCode {
  try {
    fn();
  } catch (e) {
    if (isTwinlogError(e)) return e.code;
    throw new Error(`expected a TwinlogError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a TwinlogError, nothing was thrown');
}

function errorOf(fn: () => unknown): TwinlogError {
  try {
    fn();
  } catch (e) {
    if (isTwinlogError(e)) return e;
    throw new Error(`expected a TwinlogError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a TwinlogError, nothing was thrown');
}

const decodeWire = (w: Record<string, unknown>, options?: DecodeOptions): TwinEvent =>
  decodeEvent(msgpackEncode(w), options);

/** A patch with `levels` maps nested below the patch map itself: nested(2) = {a:{a:{a:1}}}. */
function nested(levels: number): Patch {
  let p: Json = 1;
  for (let i = 0; i < levels; i++) p = { a: p };
  return { a: p };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

// ── laws ───────────────────────────────────────────────────────────────────────────────────────

describe('encodeEvent / decodeEvent: laws', () => {
  it('decode(encode(e)) deep-equals e', () => {
    fc.assert(
      fc.property(eventArb, (e) => {
        expect(decodeEvent(encodeEvent(e))).toEqual(e);
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips the extremes: wall 2^48−1, counter 65535, seq 2^53−1, astral and NUL characters', () => {
    const e: TwinEvent = {
      ...EXAMPLE,
      id: { writer: 'w\u0000🦄', seq: 2 ** 53 - 1 },
      deviceId: 'é✓𝄞',
      stamp: { wall: MAX_WALL, counter: MAX_COUNTER },
      patch: { '': '', ключ: ['𝄞', 1.5, -(2 ** 52), true, { x: null }, null], n: null } as Patch,
      cond: { ifMatch: '"*"', ifVersion: 0 },
      corr: 'c-1',
    };
    const bytes = encodeEvent(e);
    expect(decodeEvent(bytes)).toEqual(e);
    expect(hex(bytes)).toContain('c408ffffffffffffffff'); // the stamp: bin 8, all ones
  });

  it('byte order of encodeHlc equals stamp order', () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, (a, b) => {
        const byStamp = Math.sign(a.wall - b.wall || a.counter - b.counter);
        expect(Math.sign(compareBytes(encodeHlc(a), encodeHlc(b)))).toBe(byStamp);
      }),
      { numRuns: 2000 },
    );
  });

  it('decoded maps are plain objects', () => {
    const e = decodeEvent(encodeEvent({ ...EXAMPLE, patch: { a: { b: [{ c: 1 }] } }, cond: { ifVersion: 3 } }));
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(e.patch)).toBe(Object.prototype);
    expect(Object.getPrototypeOf((e.patch['a'] as Record<string, unknown>)['b'])).toBe(Array.prototype);
    expect(Object.getPrototypeOf(e.cond)).toBe(Object.prototype);
  });
});

// ── golden bytes and layout ────────────────────────────────────────────────────────────────────

describe('wire layout', () => {
  it('matches the example byte dump in the comment above encodeEvent', () => {
    expect(hex(EXAMPLE_BYTES)).toBe(
      hex(
        unhex(`88
          a1 76 01
          a2 69 64 92 a2 67 77 07
          a8 64 65 76 69 63 65 49 64 a2 64 31
          a7 73 65 63 74 69 6f 6e a7 64 65 73 69 72 65 64
          a2 6f 70 a5 6d 65 72 67 65
          a5 70 61 74 63 68 81 a1 74 15
          a5 73 74 61 6d 70 c4 08 01 8b cf e5 68 00 00 03
          a5 61 63 74 6f 72 a3 61 70 70`),
      ),
    );
  });

  it('writes the optional keys in layout order, and omits them when absent', () => {
    const bytes = encodeEvent({ ...EXAMPLE, corr: 'r', cond: { ifMatch: 'e' } });
    const s = Buffer.from(bytes).toString('latin1');
    const order = ['v', 'id', 'deviceId', 'section', 'op', 'patch', 'stamp', 'cond', 'actor', 'corr'].map((k) =>
      s.indexOf(String.fromCharCode(0xa0 + k.length) + k),
    );
    expect(order.every((at) => at > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(Buffer.from(EXAMPLE_BYTES).toString('latin1')).not.toContain('cond');
  });

  it('writes seq ≥ 2^32 as uint 64', () => {
    expect(hex(encodeEvent({ ...EXAMPLE, id: { writer: 'gw', seq: 2 ** 53 - 1 } }))).toContain('cf001fffffffffffff');
  });

  it('reads the keys in any order and from a view into a larger buffer', () => {
    const reversed = mapBytes(Object.entries(wire()).reverse());
    expect(decodeEvent(reversed)).toEqual(EXAMPLE);
    const big = new Uint8Array(EXAMPLE_BYTES.length + 10);
    big.set(EXAMPLE_BYTES, 5);
    expect(decodeEvent(big.subarray(5, 5 + EXAMPLE_BYTES.length))).toEqual(EXAMPLE);
    expect(decodeEvent(Buffer.from(EXAMPLE_BYTES))).toEqual(EXAMPLE);
  });
});

// ── explicit error cases ───────────────────────────────────────────────────────────────────────

describe('decodeEvent: CODEC_TRUNCATED', () => {
  it('empty input', () => {
    expect(codeOf(() => decodeEvent(new Uint8Array()))).toBe('CODEC_TRUNCATED');
  });

  it('every proper prefix of a valid encoding', () => {
    const bytes = encodeEvent({ ...EXAMPLE, cond: { ifMatch: 'x', ifVersion: 2 ** 40 }, corr: 'c' });
    for (let n = 0; n < bytes.length; n++) {
      expect(
        codeOf(() => decodeEvent(bytes.subarray(0, n))),
        `prefix of ${n} bytes`,
      ).toBe('CODEC_TRUNCATED');
    }
  });

  it('a header that claims more than the input holds', () => {
    expect(codeOf(() => decodeEvent(unhex('dbffffff00')))).toBe('CODEC_LIMIT_EXCEEDED'); // str 32, over maxStrLength
    expect(codeOf(() => decodeEvent(unhex('da0100 61')))).toBe('CODEC_TRUNCATED'); // str 16 of 256 bytes, 1 present
    expect(codeOf(() => decodeEvent(unhex('dc0400 01 02')))).toBe('CODEC_TRUNCATED'); // array of 1024, 2 items
    expect(codeOf(() => decodeEvent(unhex('df00000002 a161')))).toBe('CODEC_TRUNCATED'); // map 32 of 2 entries
  });
});

describe('decodeEvent: CODEC_BAD_DATA', () => {
  const cases: [string, Uint8Array][] = [
    ['not a map', msgpackEncode([1, 2])],
    ['a scalar', msgpackEncode('hello')],
    ['reserved byte 0xc1', unhex('c1')],
    ['trailing bytes', concat(EXAMPLE_BYTES, Uint8Array.of(0xc0))],
    ['two values', concat(EXAMPLE_BYTES, EXAMPLE_BYTES)],
    ['an ext value (timestamp)', msgpackEncode(wire({ patch: { at: new Date(0) } }))],
    ['a fixext in the envelope', concat(Uint8Array.of(0x81, 0xa1, 0x76), unhex('d40100'))],
    ['an integer map key', mapBytes([...Object.entries(wire()).slice(0, 7), [1, 'x']])],
    ['a nil map key', mapBytes([[null, 1]])],
    ['a repeated key', mapBytes([...Object.entries(wire()), ['actor', 'mallory']])],
    ['an unknown key', msgpackEncode(wire({ extra: 1 }))],
    ['v missing', msgpackEncode(wire({ v: undefined }), { ignoreUndefined: true })],
    ['v a string', msgpackEncode(wire({ v: '1' }))],
    ['v negative', msgpackEncode(wire({ v: -1 }))],
    ['v fractional', msgpackEncode(wire({ v: 0.5 }))],
    ['id missing', msgpackEncode(wire({ id: undefined }), { ignoreUndefined: true })],
    ['id a map', msgpackEncode(wire({ id: { writer: 'gw', seq: 7 } }))],
    ['id of 3 items', msgpackEncode(wire({ id: ['gw', 7, 0] }))],
    ['writer not a string', msgpackEncode(wire({ id: [7, 7] }))],
    ['seq negative', msgpackEncode(wire({ id: ['gw', -1] }))],
    ['seq fractional', msgpackEncode(wire({ id: ['gw', 1.5] }))],
    ['seq a decimal string', msgpackEncode(wire({ id: ['gw', '7'] }))],
    ['seq NaN', msgpackEncode(wire({ id: ['gw', NaN] }))],
    ['deviceId missing', msgpackEncode(wire({ deviceId: undefined }), { ignoreUndefined: true })],
    ['deviceId nil', msgpackEncode(wire({ deviceId: null }))],
    ['unknown section', msgpackEncode(wire({ section: 'properties' }))],
    ['unknown op', msgpackEncode(wire({ op: 'patch' }))],
    ['patch missing', msgpackEncode(wire({ patch: undefined }), { ignoreUndefined: true })],
    ['patch an array', msgpackEncode(wire({ patch: [1] }))],
    ['patch nil', msgpackEncode(wire({ patch: null }))],
    ['bin inside the patch', msgpackEncode(wire({ patch: { b: new Uint8Array(2) } }))],
    ['NaN inside the patch', msgpackEncode(wire({ patch: { n: [NaN] } }))],
    ['Infinity inside the patch', msgpackEncode(wire({ patch: { n: { m: -Infinity } } }))],
    ['stamp missing', msgpackEncode(wire({ stamp: undefined }), { ignoreUndefined: true })],
    ['stamp of 7 bytes', msgpackEncode(wire({ stamp: new Uint8Array(7) }))],
    ['stamp of 9 bytes', msgpackEncode(wire({ stamp: new Uint8Array(9) }))],
    ['stamp as [wall, counter]', msgpackEncode(wire({ stamp: [1, 2] }))],
    ['stamp as a str', msgpackEncode(wire({ stamp: '12345678' }))],
    ['cond nil', msgpackEncode(wire({ cond: null }))],
    ['cond with an unknown key', msgpackEncode(wire({ cond: { ifNoneMatch: 'x' } }))],
    ['cond.ifMatch a number', msgpackEncode(wire({ cond: { ifMatch: 1 } }))],
    ['cond.ifVersion negative', msgpackEncode(wire({ cond: { ifVersion: -1 } }))],
    ['actor missing', msgpackEncode(wire({ actor: undefined }), { ignoreUndefined: true })],
    ['corr a number', msgpackEncode(wire({ corr: 1 }))],
  ];
  it.each(cases)('%s', (_name, bytes) => {
    expect(codeOf(() => decodeEvent(bytes))).toBe('CODEC_BAD_DATA');
  });

  it('a repeated key inside the patch (hand-built)', () => {
    const patch = mapBytes([
      ['a', 1],
      ['a', 2],
    ]);
    const entries = Object.entries(wire({ patch: 'PATCH' }));
    const withPatch = concat(
      ...[Uint8Array.of(0x80 | entries.length)],
      ...entries.flatMap(([k, v]) => [msgpackEncode(k), v === 'PATCH' ? patch : msgpackEncode(v)]),
    );
    expect(codeOf(() => decodeEvent(withPatch))).toBe('CODEC_BAD_DATA');
  });

  /** EXAMPLE_BYTES with the seq (byte 11, fixint 7) replaced by `seqHex`. */
  const withSeq = (seqHex: string): Uint8Array =>
    concat(EXAMPLE_BYTES.subarray(0, 11), unhex(seqHex), EXAMPLE_BYTES.subarray(12));

  it('seq ≥ 2^53 as uint 64: 2^53, 2^53 + 1 and 2^64 − 1 (which msgpack-javascript rounds)', () => {
    expect(EXAMPLE_BYTES[11]).toBe(0x07);
    for (const seq of ['cf0020000000000000', 'cf0020000000000001', 'cfffffffffffffffff']) {
      const err = errorOf(() => decodeEvent(withSeq(seq)));
      expect(err.code).toBe('CODEC_BAD_DATA');
      expect(err.message).toContain('2^53');
    }
    expect(decodeEvent(withSeq('cf001fffffffffffff')).id.seq).toBe(2 ** 53 - 1);
  });

  it('negative int 64 seq', () => {
    expect(codeOf(() => decodeEvent(withSeq('d3ffffffffffffffff')))).toBe('CODEC_BAD_DATA');
  });

  it('input that is not a Uint8Array', () => {
    expect(codeOf(() => decodeEvent([0x80] as unknown as Uint8Array))).toBe('CODEC_BAD_DATA');
  });
});

describe('decodeEvent: CODEC_FORBIDDEN_KEY', () => {
  const evil = (k: string): [string, unknown] => [k, { polluted: true }];
  const cases: [string, Uint8Array][] = [
    ['__proto__ at the top', mapBytes([evil('__proto__'), ...Object.entries(wire())])],
    ['constructor at the top', mapBytes([...Object.entries(wire()), evil('constructor')])],
    ['prototype at the top', mapBytes([...Object.entries(wire()), evil('prototype')])],
    ['__proto__ in the patch', msgpackEncode(wire({ patch: JSON.parse('{"a":{"__proto__":{"polluted":true}}}') }))],
    ['constructor in the patch', msgpackEncode(wire({ patch: { a: [{ constructor: { prototype: 1 } }] } }))],
    ['prototype in the patch', msgpackEncode(wire({ patch: { prototype: 1 } }))],
    ['__proto__ in cond', msgpackEncode(wire({ cond: JSON.parse('{"__proto__":{"ifMatch":"*"}}') }))],
  ];
  it.each(cases)('%s', (_name, bytes) => {
    expect(codeOf(() => decodeEvent(bytes))).toBe('CODEC_FORBIDDEN_KEY');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('is found in the decoded key, so overlong UTF-8 spellings do not slip through', () => {
    // msgpack-javascript decodes the overlong 2-byte form c1 a3 as "c", and c1 9f as "_"
    const overlong = (rest: string, lead: string): Uint8Array => {
      const keyBytes = concat(unhex(lead), new TextEncoder().encode(rest));
      return concat(Uint8Array.of(0x81, 0xa0 | keyBytes.length), keyBytes, Uint8Array.of(0x01));
    };
    expect(codeOf(() => decodeEvent(overlong('onstructor', 'c1a3')))).toBe('CODEC_FORBIDDEN_KEY');
    expect(codeOf(() => decodeEvent(overlong('_proto__', 'c19f')))).toBe('CODEC_FORBIDDEN_KEY');
  });

  it('is refused at encode time too, so the log never holds one', () => {
    expect(codeOf(() => encodeEvent({ ...EXAMPLE, patch: JSON.parse('{"__proto__":{"x":1}}') }))).toBe(
      'CODEC_FORBIDDEN_KEY',
    );
    expect(codeOf(() => encodeEvent({ ...EXAMPLE, patch: { a: { constructor: 1 } } }))).toBe('CODEC_FORBIDDEN_KEY');
    expect(errorOf(() => encodeEvent({ ...EXAMPLE, patch: { a: { b: { prototype: 1 } } } })).path).toEqual(['a', 'b']);
  });
});

describe('decodeEvent: CODEC_UNSUPPORTED_VERSION', () => {
  it('a future version', () => {
    const err = errorOf(() => decodeWire(wire({ v: ENVELOPE_VERSION + 1 })));
    expect(err.code).toBe('CODEC_UNSUPPORTED_VERSION');
    expect(err.details).toMatchObject({ version: ENVELOPE_VERSION + 1, supported: ENVELOPE_VERSION });
  });

  it('takes precedence over field checks: a future record may look different', () => {
    expect(codeOf(() => decodeWire({ v: 2, id: 'new-form', extra: [NaN], patch: { b: new Uint8Array(1) } }))).toBe(
      'CODEC_UNSUPPORTED_VERSION',
    );
  });

  it('an old version no upcaster reaches (the shipped set is empty)', () => {
    expect(ENVELOPE_UPCASTERS).toEqual({});
    expect(codeOf(() => decodeWire(wire({ v: 0 })))).toBe('CODEC_UNSUPPORTED_VERSION');
  });

  it('ignores upcasters inherited through the prototype chain', () => {
    const inherited = Object.create({ 0: (raw: Record<string, unknown>) => raw }) as Upcasters;
    expect(codeOf(() => decodeWire(wire({ v: 0 }), { upcasters: inherited }))).toBe('CODEC_UNSUPPORTED_VERSION');
  });
});

// ── limits ─────────────────────────────────────────────────────────────────────────────────────

describe('decodeEvent: limits at the bound and one past', () => {
  it('documents its defaults', () => {
    expect(DEFAULT_EVENT_LIMITS).toEqual({
      maxBytes: 262_144,
      maxDepth: 16,
      maxStrLength: 65_536,
      maxBinLength: 65_536,
      maxArrayLength: 65_536,
      maxMapLength: 65_536,
    });
  });

  it('maxBytes', () => {
    const n = EXAMPLE_BYTES.length;
    expect(decodeEvent(EXAMPLE_BYTES, { maxBytes: n })).toEqual(EXAMPLE);
    expect(codeOf(() => decodeEvent(EXAMPLE_BYTES, { maxBytes: n - 1 }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('maxBytes default: 256 KiB passes, one byte more does not', () => {
    // Four 60 000-byte strings (one may not exceed maxStrLength) plus a str 16 pad sized to the target.
    const chunks = Object.fromEntries([0, 1, 2, 3].map((i) => [`k${i}`, 'x'.repeat(60_000)]));
    const sized = (total: number): Uint8Array => {
      const base = encodeEvent({ ...EXAMPLE, patch: { ...chunks, pad: 'y'.repeat(256) } }).length;
      return encodeEvent({ ...EXAMPLE, patch: { ...chunks, pad: 'y'.repeat(256 + total - base) } });
    };
    const exact = sized(262_144);
    expect(exact.length).toBe(262_144);
    expect(decodeEvent(exact).id).toEqual(EXAMPLE.id);
    const over = sized(262_145);
    expect(over.length).toBe(262_145);
    expect(codeOf(() => decodeEvent(over))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('maxDepth default 16: 14 maps nested below the patch pass, 15 do not (envelope 1, patch 2)', () => {
    expect(decodeEvent(msgpackEncode(wire({ patch: nested(14) }))).patch).toEqual(nested(14));
    const err = errorOf(() => decodeEvent(msgpackEncode(wire({ patch: nested(15) }))));
    expect(err.code).toBe('CODEC_LIMIT_EXCEEDED');
    expect(err.details).toMatchObject({ limit: 'maxDepth', max: 16 });
  });

  it('maxDepth counts arrays and empty containers', () => {
    const deepArrays = (n: number): Json => (n === 0 ? [] : [deepArrays(n - 1)]);
    // patch (2) → a: arrays at depths 3..(3+n)
    expect(() => decodeWire(wire({ patch: { a: deepArrays(13) } }))).not.toThrow();
    expect(codeOf(() => decodeWire(wire({ patch: { a: deepArrays(14) } })))).toBe('CODEC_LIMIT_EXCEEDED');
    // the patch map is at depth 2, the value of a at 3, of b at 4, of c at 5, of d at 6
    expect(() => decodeWire(wire({ patch: { a: { b: { c: {} } } } }), { maxDepth: 5 })).not.toThrow();
    expect(codeOf(() => decodeWire(wire({ patch: { a: { b: { c: { d: {} } } } } }), { maxDepth: 5 }))).toBe(
      'CODEC_LIMIT_EXCEEDED',
    );
  });

  it('maxStrLength (UTF-8 bytes, values and keys)', () => {
    const w = wire({ deviceId: 'é'.repeat(50) }); // 100 bytes
    expect(decodeWire(w, { maxStrLength: 100 }).deviceId).toBe('é'.repeat(50));
    expect(codeOf(() => decodeWire(w, { maxStrLength: 99 }))).toBe('CODEC_LIMIT_EXCEEDED');
    const k = wire({ patch: { ['k'.repeat(100)]: 1 } });
    expect(() => decodeWire(k, { maxStrLength: 100 })).not.toThrow();
    expect(codeOf(() => decodeWire(k, { maxStrLength: 99 }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('maxArrayLength', () => {
    const w = wire({ patch: { a: Array.from({ length: 20 }, (_, i) => i) } });
    expect(() => decodeWire(w, { maxArrayLength: 20 })).not.toThrow();
    expect(codeOf(() => decodeWire(w, { maxArrayLength: 19 }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('maxMapLength', () => {
    const patch = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, i]));
    const w = wire({ patch });
    expect(() => decodeWire(w, { maxMapLength: 12 })).not.toThrow();
    expect(codeOf(() => decodeWire(w, { maxMapLength: 11 }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('maxBinLength (the stamp is bin 8)', () => {
    expect(() => decodeEvent(EXAMPLE_BYTES, { maxBinLength: 8 })).not.toThrow();
    expect(codeOf(() => decodeEvent(EXAMPLE_BYTES, { maxBinLength: 7 }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('a huge declared length fails before anything is allocated', () => {
    expect(codeOf(() => decodeEvent(unhex('ddffffffff')))).toBe('CODEC_LIMIT_EXCEEDED');
    expect(codeOf(() => decodeEvent(unhex('ddffffffff'), { maxArrayLength: Infinity }))).toBe('CODEC_TRUNCATED');
    // A claim larger than the bytes left is refused at once, whatever the limits.
    expect(codeOf(() => decodeEvent(unhex('dcffff'.repeat(20_000)), { maxDepth: Infinity }))).toBe('CODEC_TRUNCATED');
    // 20 000 nested array-16 headers each claiming 20 000 items (msgpack-javascript alone would
    // pre-allocate ~13 000 arrays of 20 000 slots): refused by depth, or as truncated, before allocation.
    const bomb = unhex('dc4e20'.repeat(20_000));
    expect(codeOf(() => decodeEvent(bomb))).toBe('CODEC_LIMIT_EXCEEDED');
    expect(codeOf(() => decodeEvent(bomb, { maxDepth: Infinity, maxArrayLength: Infinity }))).toBe('CODEC_TRUNCATED');
  });

  it('malformed options are a caller bug (RangeError)', () => {
    expect(() => decodeEvent(EXAMPLE_BYTES, { maxDepth: -1 })).toThrow(RangeError);
    expect(() => decodeEvent(EXAMPLE_BYTES, { maxBytes: Number.NaN })).toThrow(RangeError);
    expect(() => safeDecodeEvent(EXAMPLE_BYTES, { maxStrLength: 1.5 })).toThrow(RangeError);
  });
});

// ── upcasting ──────────────────────────────────────────────────────────────────────────────────

describe('upcasting', () => {
  /**
   * A synthetic version 0, to show the mechanism: writer and seq were top-level fields, the stamp
   * was [wall, counter], `kind` named the section, and every write was a merge.
   */
  const v0 = {
    v: 0,
    writer: 'gw',
    seq: 7,
    deviceId: 'd1',
    kind: 'desired',
    patch: { t: 21 },
    stamp: [1_700_000_000_000, 3],
    actor: 'app',
  };
  const v0ToV1 = (raw: Readonly<Record<string, unknown>>): Record<string, unknown> => {
    const { writer, seq, kind, stamp, ...rest } = raw;
    const [wall, counter] = stamp as [number, number];
    return { ...rest, id: [writer, seq], section: kind, op: 'merge', stamp: encodeHlc({ wall, counter }) };
  };
  const upcasters: Upcasters = { ...ENVELOPE_UPCASTERS, 0: v0ToV1 };

  it('reads a v0 record as the current version', () => {
    expect(decodeEvent(msgpackEncode(v0), { upcasters })).toEqual(EXAMPLE);
  });

  it('sets v itself, so an upcaster need not', () => {
    const e = decodeEvent(msgpackEncode(v0), { upcasters: { 0: (raw) => ({ ...v0ToV1(raw), v: 99 }) } });
    expect(e.v).toBe(ENVELOPE_VERSION);
  });

  it('leaves current records alone', () => {
    let calls = 0;
    const counting: Upcasters = { 0: (raw) => (calls++, v0ToV1(raw)) };
    expect(decodeEvent(EXAMPLE_BYTES, { upcasters: counting })).toEqual(EXAMPLE);
    expect(calls).toBe(0);
  });

  it('validates what the upcaster returns', () => {
    const broken: Upcasters = { 0: (raw) => ({ ...v0ToV1(raw), patch: { b: new Uint8Array(1) } }) };
    expect(codeOf(() => decodeEvent(msgpackEncode(v0), { upcasters: broken }))).toBe('CODEC_BAD_DATA');
    const notMap = { 0: () => [] as unknown as Record<string, unknown> };
    expect(codeOf(() => decodeEvent(msgpackEncode(v0), { upcasters: notMap }))).toBe('CODEC_BAD_DATA');
    const unknownKey: Upcasters = { 0: (raw) => ({ ...v0ToV1(raw), kind: 'desired' }) };
    expect(codeOf(() => decodeEvent(msgpackEncode(v0), { upcasters: unknownKey }))).toBe('CODEC_BAD_DATA');
  });

  it('wraps a failing upcaster as CODEC_BAD_DATA, and passes a TwinlogError through', () => {
    const boom = new Error('boom');
    const err = errorOf(() =>
      decodeEvent(msgpackEncode(v0), {
        upcasters: {
          0: () => {
            throw boom;
          },
        },
      }),
    );
    expect(err.code).toBe('CODEC_BAD_DATA');
    expect(err.cause).toBe(boom);
    const own = new TwinlogError('CODEC_UNSUPPORTED_VERSION', 'v0 without stamp is unsupported');
    expect(
      errorOf(() =>
        decodeEvent(msgpackEncode(v0), {
          upcasters: {
            0: () => {
              throw own;
            },
          },
        }),
      ),
    ).toBe(own);
  });

  it('checks the raw v0 map for hostile content before any upcaster sees it', () => {
    const evil = msgpackEncode({ ...v0, extra: JSON.parse('{"__proto__":1}') });
    let called = false;
    expect(codeOf(() => decodeEvent(evil, { upcasters: { 0: (raw) => ((called = true), v0ToV1(raw)) } }))).toBe(
      'CODEC_FORBIDDEN_KEY',
    );
    expect(called).toBe(false);
  });
});

// ── encode-side checks ─────────────────────────────────────────────────────────────────────────

describe('encodeEvent: refuses what decodeEvent would refuse', () => {
  class Box {
    x = 1;
  }
  const cases: [string, unknown][] = [
    ['an old version', { ...EXAMPLE, v: 0 }],
    ['a future version', { ...EXAMPLE, v: 2 }],
    ['seq negative', { ...EXAMPLE, id: { writer: 'gw', seq: -1 } }],
    ['seq 2^53', { ...EXAMPLE, id: { writer: 'gw', seq: 2 ** 53 } }],
    ['seq fractional', { ...EXAMPLE, id: { writer: 'gw', seq: 0.5 } }],
    ['writer not a string', { ...EXAMPLE, id: { writer: 1, seq: 1 } }],
    ['wall 2^48', { ...EXAMPLE, stamp: { wall: 2 ** 48, counter: 0 } }],
    ['counter 65536', { ...EXAMPLE, stamp: { wall: 0, counter: 65_536 } }],
    ['wall negative', { ...EXAMPLE, stamp: { wall: -1, counter: 0 } }],
    ['unknown section', { ...EXAMPLE, section: 'properties' }],
    ['unknown op', { ...EXAMPLE, op: 'add' }],
    ['actor missing', { ...EXAMPLE, actor: undefined }],
    ['corr a number', { ...EXAMPLE, corr: 1 }],
    ['cond with an unknown key', { ...EXAMPLE, cond: { ifNoneMatch: 'x' } }],
    ['cond.ifVersion fractional', { ...EXAMPLE, cond: { ifVersion: 1.5 } }],
    ['patch an array', { ...EXAMPLE, patch: [] }],
    ['undefined in the patch', { ...EXAMPLE, patch: { a: undefined } }],
    // eslint-disable-next-line no-sparse-arrays -- the hole is the case under test
    ['a hole in a patch array', { ...EXAMPLE, patch: { a: [1, , 3] } }],
    ['NaN in the patch', { ...EXAMPLE, patch: { a: NaN } }],
    ['a Date in the patch', { ...EXAMPLE, patch: { a: new Date(0) } }],
    ['a class instance in the patch', { ...EXAMPLE, patch: { a: new Box() } }],
    ['a Map in the patch', { ...EXAMPLE, patch: { a: new Map() } }],
    ['bytes in the patch', { ...EXAMPLE, patch: { a: new Uint8Array(1) } }],
    ['a bigint in the patch', { ...EXAMPLE, patch: { a: 1n } }],
  ];
  it.each(cases)('%s → EVENT_INVALID', (_name, e) => {
    expect(codeOf(() => encodeEvent(e as TwinEvent))).toBe('EVENT_INVALID');
  });

  it('names the offending patch path', () => {
    expect(errorOf(() => encodeEvent({ ...EXAMPLE, patch: { a: [0, { b: Number.POSITIVE_INFINITY }] } })).path).toEqual(
      ['a', '1', 'b'],
    );
  });

  it('refuses a patch deeper than the default decode limit', () => {
    expect(() => encodeEvent({ ...EXAMPLE, patch: nested(14) })).not.toThrow();
    expect(codeOf(() => encodeEvent({ ...EXAMPLE, patch: nested(15) }))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('accepts null-prototype patch objects', () => {
    const patch = Object.assign(Object.create(null) as Patch, { a: 1 });
    expect(decodeEvent(encodeEvent({ ...EXAMPLE, patch })).patch).toEqual({ a: 1 });
  });

  it('is reentrant-safe and returns fresh buffers', () => {
    const a = encodeEvent(EXAMPLE);
    const b = encodeEvent({ ...EXAMPLE, deviceId: 'other' });
    expect(decodeEvent(a)).toEqual(EXAMPLE);
    expect(decodeEvent(b).deviceId).toBe('other');
  });
});

describe('safeDecodeEvent', () => {
  it('returns the event or the error as a value', () => {
    expect(safeDecodeEvent(EXAMPLE_BYTES)).toEqual({ ok: true, value: EXAMPLE });
    const r = safeDecodeEvent(EXAMPLE_BYTES.subarray(0, 5));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('CODEC_TRUNCATED');
  });
});

// ── fuzz ───────────────────────────────────────────────────────────────────────────────────────

/**
 * Decode hostile bytes: either a valid event comes out (which then re-encodes and decodes to the
 * same value), or a TwinlogError with a CODEC_* code. Anything else fails the property.
 */
function decodesOrRefuses(bytes: Uint8Array, options?: DecodeOptions): void {
  let event: TwinEvent;
  try {
    event = decodeEvent(bytes, options);
  } catch (e) {
    if (!isTwinlogError(e) || !e.code.startsWith('CODEC_')) {
      throw new Error(`unexpected error for ${hex(bytes)}: ${String(e)}`, { cause: e });
    }
    return;
  }
  expect(jsonEquals(decodeEvent(encodeEvent(event)), event)).toBe(true);
}

describe('fuzz: only CODEC_* TwinlogErrors escape, and the decoder keeps working', () => {
  it('10 000 random byte arrays', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => {
        decodesOrRefuses(bytes);
      }),
      { numRuns: 10_000 },
    );
    expect(decodeEvent(EXAMPLE_BYTES)).toEqual(EXAMPLE);
  });

  it('random bytes behind a map header (reach deeper into the decoder)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 96 }), (head, rest) => {
        decodesOrRefuses(concat(Uint8Array.of(head), rest));
      }),
      { numRuns: 5_000 },
    );
  });

  it('random truncations of valid encodings are CODEC_TRUNCATED', () => {
    fc.assert(
      fc.property(eventArb, fc.nat(), (e, cut) => {
        const bytes = encodeEvent(e);
        const n = cut % bytes.length;
        expect(codeOf(() => decodeEvent(bytes.subarray(0, n)))).toBe('CODEC_TRUNCATED');
        expect(decodeEvent(bytes)).toEqual(e);
      }),
      { numRuns: 2_000 },
    );
  });

  it('single-byte mutations of valid encodings', () => {
    fc.assert(
      fc.property(eventArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (e, at, byte) => {
        const bytes = encodeEvent(e);
        const mutated = bytes.slice();
        mutated[at % bytes.length] = byte;
        decodesOrRefuses(mutated);
        expect(decodeEvent(bytes)).toEqual(e);
      }),
      { numRuns: 5_000 },
    );
  });

  it('mutations under tight limits', () => {
    const tight: DecodeOptions = { maxDepth: 4, maxStrLength: 8, maxArrayLength: 3, maxMapLength: 9, maxBinLength: 8 };
    fc.assert(
      fc.property(eventArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (e, at, byte) => {
        const mutated = encodeEvent(e);
        mutated[at % mutated.length] = byte;
        try {
          decodeEvent(mutated, tight);
        } catch (err) {
          if (!isTwinlogError(err) || !err.code.startsWith('CODEC_')) throw err;
        }
      }),
      { numRuns: 2_000 },
    );
    expect(decodeEvent(EXAMPLE_BYTES)).toEqual(EXAMPLE);
  });
});

// ── JSDoc examples (kept in step with the comments in encodeEvent.ts) ──────────────────────────

describe('JSDoc examples', () => {
  it('encodeEvent', () => {
    const event: TwinEvent = {
      v: ENVELOPE_VERSION,
      id: { writer: 'gw-7f3a9c', seq: 1 },
      deviceId: 'dev-1',
      section: 'desired',
      op: 'merge',
      patch: { fan: { speed: 3 } },
      stamp: { wall: 1_700_000_000_000, counter: 0 },
      actor: 'app-1',
    };
    const bytes = encodeEvent(event);
    expect(decodeEvent(bytes)).toEqual(event);
  });

  it('decodeEvent with tighter limits, safeDecodeEvent routing', () => {
    expect(decodeEvent(EXAMPLE_BYTES, { maxBytes: 16 * 1024 })).toEqual(EXAMPLE);
    const routed: string[] = [];
    for (const value of [EXAMPLE_BYTES, EXAMPLE_BYTES.subarray(1)]) {
      const r = safeDecodeEvent(value);
      if (r.ok) routed.push('apply');
      else routed.push(`dead-letter ${r.error.code}`);
    }
    expect(routed).toEqual(['apply', 'dead-letter CODEC_BAD_DATA']);
  });

  it('ENVELOPE_UPCASTERS extended by a caller', () => {
    const bytes = msgpackEncode({ ...wire({ v: 0 }), op: undefined }, { ignoreUndefined: true });
    const e = decodeEvent(bytes, { upcasters: { ...ENVELOPE_UPCASTERS, 0: (raw) => ({ ...raw, op: 'merge' }) } });
    expect(e).toEqual(EXAMPLE);
  });
});
