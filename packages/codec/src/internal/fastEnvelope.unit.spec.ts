/**
 * The one-pass envelope decoder must never change what `decodeEvent` returns or throws: for every
 * input, the default call (which tries the fast path first) and a call with explicit default limits
 * (which always takes the general path) agree, value for value and error for error.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { ENVELOPE_VERSION, type Patch, type TwinEvent } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_EVENT_LIMITS } from '../decodeLimits.ts';
import { decodeEvent, encodeEvent } from '../encodeEvent.ts';
import { fastEnvelope } from './fastEnvelope.ts';

type Outcome = { ok: true; value: TwinEvent } | { ok: false; code: string; message: string };

function outcome(decode: () => TwinEvent): Outcome {
  try {
    return { ok: true, value: decode() };
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { ok: false, code: err.code ?? 'THROWN', message: err.message };
  }
}

/** The default call (fast path first) and the general path agree on `bytes`. */
function agree(bytes: Uint8Array): Outcome {
  const fast = outcome(() => decodeEvent(bytes));
  const general = outcome(() => decodeEvent(bytes, { ...DEFAULT_EVENT_LIMITS }));
  expect(fast).toEqual(general);
  return fast;
}

const asciiText = (maxLength = 20): fc.Arbitrary<string> => fc.string({ unit: 'grapheme-ascii', maxLength });
const anyText = (maxLength = 20): fc.Arbitrary<string> =>
  fc.oneof(
    { arbitrary: asciiText(maxLength), weight: 6 },
    { arbitrary: fc.string({ unit: 'binary', maxLength }), weight: 1 },
  );
const key = fc.oneof(
  { arbitrary: asciiText(12), weight: 20 },
  { arbitrary: fc.constantFrom('0', '10', '__proto__', 'constructor', 'a'.repeat(40)), weight: 1 },
);
const num = fc.oneof(
  fc.integer(),
  fc.integer({ min: -200, max: 200 }),
  fc.constantFrom(2 ** 32, 2 ** 32 - 1, -(2 ** 31) - 1, 2 ** 53 - 1, 0.5, 1e300),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
);
const { json } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small' },
    num,
    anyText(),
    asciiText(300),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4, depthIdentifier: 'json' }),
    fc.dictionary(key, tie('json'), { maxKeys: 4, noNullPrototype: true, depthIdentifier: 'json' }),
  ),
}));
const patchArb = fc.dictionary(key, json, { maxKeys: 6, noNullPrototype: true }) as fc.Arbitrary<Patch>;
const eventArb: fc.Arbitrary<TwinEvent> = fc.record(
  {
    v: fc.constant(ENVELOPE_VERSION),
    id: fc.record({
      writer: anyText(),
      seq: fc.oneof({ arbitrary: fc.nat(), weight: 6 }, { arbitrary: fc.maxSafeNat(), weight: 1 }),
    }),
    deviceId: anyText(),
    section: fc.constantFrom('tags', 'desired', 'reported', 'create', 'delete'),
    op: fc.constantFrom('merge', 'replace'),
    patch: patchArb,
    stamp: fc.record({ wall: fc.integer({ min: 0, max: 2 ** 47 }), counter: fc.integer({ min: 0, max: 65535 }) }),
    cond: fc.record({ ifMatch: asciiText(), ifVersion: fc.nat(), key: asciiText() }, { requiredKeys: [] }),
    actor: anyText(),
    corr: asciiText(),
  },
  { requiredKeys: ['v', 'id', 'deviceId', 'section', 'op', 'patch', 'stamp', 'actor'] },
);

/** Encodable events only (the encoder refuses what the decoder would). */
const encodedArb = eventArb.chain((e) => {
  let bytes: Uint8Array;
  try {
    bytes = encodeEvent(e);
  } catch {
    return fc.constant(undefined);
  }
  return fc.constant(bytes);
});

describe('fastEnvelope', () => {
  it('decodes ordinary envelopes in one pass, to what the general path decodes', () => {
    const bytes = encodeEvent({
      v: ENVELOPE_VERSION,
      id: { writer: 'gw-1', seq: 70_000 },
      deviceId: 'dev-7',
      section: 'reported',
      op: 'merge',
      patch: { group1: { leaf3: 'v41', leaf5: -12, leaf6: null, leaf7: 0.25 }, arr: [1, 'x', [true]] },
      stamp: { wall: 1_700_000_000_000, counter: 3 },
      actor: 'device',
    });
    expect(fastEnvelope(bytes, DEFAULT_EVENT_LIMITS)).toBeDefined();
    expect(agree(bytes)).toMatchObject({ ok: true });
  });

  it('gives up on anything it does not handle exactly, and the general path decides', () => {
    const nonAscii = encodeEvent({
      v: ENVELOPE_VERSION,
      id: { writer: 'gw', seq: 1 },
      deviceId: 'dév',
      section: 'tags',
      op: 'merge',
      patch: {},
      stamp: { wall: 1, counter: 0 },
      actor: 'a',
    });
    expect(fastEnvelope(nonAscii, DEFAULT_EVENT_LIMITS)).toBeUndefined();
    expect(agree(nonAscii)).toMatchObject({ ok: true });
    for (const hostile of [
      msgpackEncode({ v: 1, __proto__x: 1 }),
      Uint8Array.of(0x81, 0xa1, 0x76, 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), // { v: Infinity }
      Uint8Array.of(0x82, 0xa1, 0x76, 0x01, 0xa1, 0x76, 0x01), // a repeated key
      Uint8Array.of(0x81, 0xa1, 0x76), // truncated
      Uint8Array.of(0x80, 0x00), // trailing byte
      Uint8Array.of(),
    ])
      expect(agree(hostile)).toMatchObject({ ok: false });
  });

  it('agrees with the general path on every encodable event', () => {
    let encoded = 0;
    let fast = 0;
    fc.assert(
      fc.property(encodedArb, (bytes) => {
        if (bytes === undefined) return;
        encoded++;
        if (fastEnvelope(bytes, DEFAULT_EVENT_LIMITS) !== undefined) fast++;
        expect(agree(bytes)).toMatchObject({ ok: true });
      }),
      { numRuns: 2000 },
    );
    // the property is about the fast path only if it is taken often
    expect(fast).toBeGreaterThan(encoded / 4);
  });

  it('agrees with the general path on mutated, truncated and extended envelopes', () => {
    const mutated = fc
      .tuple(
        encodedArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 3 }),
      )
      .map(([bytes, flips, cut, tail]) => {
        if (bytes === undefined) return Uint8Array.of(0xc1);
        const out = new Uint8Array(bytes);
        for (const [at, b] of flips) out[at % out.length] = b;
        const kept = out.subarray(0, cut % 7 === 0 ? cut % out.length : out.length);
        const joined = new Uint8Array(kept.length + tail.length);
        joined.set(kept);
        joined.set(tail, kept.length);
        return joined;
      });
    fc.assert(
      fc.property(mutated, (bytes) => {
        agree(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with the general path on arbitrary msgpack maps', () => {
    const maps = fc
      .dictionary(fc.oneof(key, fc.constantFrom('v', 'id', 'patch', 'stamp')), json, { maxKeys: 10 })
      .map((m) => msgpackEncode({ v: 1, ...m }));
    fc.assert(
      fc.property(maps, (bytes) => {
        agree(bytes);
      }),
      { numRuns: 1000 },
    );
  });
});
