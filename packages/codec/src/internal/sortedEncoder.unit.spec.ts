import { Encoder } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_EXTENSIONS } from './noExtensions.ts';
import { SortedEncoder } from './sortedEncoder.ts';

const reference = new Encoder({ extensionCodec: NO_EXTENSIONS, sortKeys: true, ignoreUndefined: true });
const mine = new SortedEncoder();

const leaf = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(
    0,
    -0,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2 ** 31),
    -(2 ** 31) - 1,
    2 ** 53 - 1,
    -(2 ** 53 - 1),
  ),
  fc.double(),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    leaf,
    fc.array(tie('v'), { maxLength: 20 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 12 }), tie('v'), { maxKeys: 20 }),
  ),
})).v;

describe('SortedEncoder', () => {
  it('writes the bytes of @msgpack/msgpack with sortKeys and ignoreUndefined', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(Buffer.from(mine.encode(v)).toString('hex')).toBe(Buffer.from(reference.encode(v)).toString('hex'));
      }),
      { numRuns: 3000 },
    );
  });

  it('handles long strings, big arrays, maps and binaries (the 16- and 32-bit headers) and a buffer that must grow', () => {
    const big = {
      s: 'x'.repeat(70_000),
      u: 'é'.repeat(40_000),
      a: Array.from({ length: 70_000 }, (_, i) => i),
      m: Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i % 3 === 0 ? undefined : i])),
      b: new Uint8Array(70_000).fill(7),
      view: new Uint8Array(new ArrayBuffer(300), 10, 20),
      lone: ['\ud800', 'a\udc00b', '\udbff\udfff', `${'y'.repeat(60)}\ud800`, `${'é'.repeat(60)}\udc00`],
      keys: { é: 1, z: 2, Z: 3, '\u{1F600}': 4, '': 5 },
    };
    expect(Buffer.from(mine.encode(big)).equals(Buffer.from(reference.encode(big)))).toBe(true);
  });
});
