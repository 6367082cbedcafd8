/**
 * Freshness tokens: round trip, the `reflects` order, and hostile tokens (fast-check, seeded):
 * anything that is not a token this module wrote is `FRESHNESS_TOKEN_INVALID`, nothing else.
 */
import { isTwinlogError } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFreshness, encodeFreshness, reflects, type Positions } from './freshness.ts';

const offsets = fc.array(fc.nat({ max: 2 ** 40 }), { minLength: 1, maxLength: 8 });
const positions: fc.Arbitrary<Positions> = fc.record({ snapshots: offsets, backend: offsets, device: offsets });

describe('freshness tokens', () => {
  it('round-trip, and a model reflects a token iff it is at or past it on every partition', () => {
    fc.assert(
      fc.property(positions, positions, (a, b) => {
        expect(decodeFreshness(encodeFreshness(a))).toEqual(a);
        expect(reflects(a, a)).toBe(true);
        const past = { snapshots: a.snapshots.map((n) => n + 1), backend: a.backend, device: a.device };
        expect(reflects(past, a)).toBe(true);
        expect(reflects(a, past)).toBe(false);
        const expected = (['snapshots', 'backend', 'device'] as const).every((k) =>
          b[k].every((w, i) => w <= (a[k][i] ?? 0)),
        );
        expect(reflects(a, b)).toBe(expected);
      }),
      { numRuns: 1000, seed: 0xf7e5 },
    );
  });

  it('refuses anything else with FRESHNESS_TOKEN_INVALID only', () => {
    const hostile = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.base64String({ maxLength: 60 }),
      fc.json().map((j) => Buffer.from(j).toString('base64url')),
      fc
        .record({ v: fc.anything(), s: fc.anything(), b: fc.anything(), d: fc.anything() })
        .map((o) => Buffer.from(JSON.stringify(o) ?? '').toString('base64url')),
    );
    fc.assert(
      fc.property(hostile, (token) => {
        try {
          const p = decodeFreshness(token);
          expect(decodeFreshness(encodeFreshness(p))).toEqual(p); // only well-formed tokens decode
        } catch (e) {
          if (!isTwinlogError(e)) throw e;
          expect(e.code as string).toBe('FRESHNESS_TOKEN_INVALID');
        }
      }),
      { numRuns: 3000, seed: 0xf7e6 },
    );
  });
});
