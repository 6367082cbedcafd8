import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoOf } from './stamp.ts';

const FAST_END = Date.UTC(10000, 0, 1);

describe('isoOf', () => {
  it('is Date#toISOString, whatever the wall and whatever was formatted before it', () => {
    const wall = fc.oneof(
      fc.integer({ min: 0, max: FAST_END + 1000 }),
      // near day boundaries, where the cached day must change
      fc
        .tuple(fc.integer({ min: 0, max: 3_000_000 }), fc.integer({ min: -2, max: 2 }))
        .map(([d, ms]) => Math.max(0, d * 86_400_000 + ms)),
      fc.integer({ min: -8.64e15, max: 8.64e15 }),
      fc.double({ min: -1e13, max: 1e13, noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(wall, { minLength: 1, maxLength: 20 }), (walls) => {
        for (const w of walls) expect(isoOf(w)).toBe(new Date(w).toISOString());
      }),
      { numRuns: 2000 },
    );
  });

  it('throws as Date#toISOString does for a time it cannot show', () => {
    expect(() => isoOf(Number.NaN)).toThrow(RangeError);
    expect(() => isoOf(8.64e15 + 1)).toThrow(RangeError);
    expect(isoOf(FAST_END - 1)).toBe('9999-12-31T23:59:59.999Z');
    expect(isoOf(FAST_END)).toBe('+010000-01-01T00:00:00.000Z');
  });
});
