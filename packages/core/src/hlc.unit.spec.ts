import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTwinlogError } from './errors.ts';
import { createHybridClock } from './hlc.ts';
import { compareStamps, decodeHlc, encodeHlc, MAX_COUNTER, MAX_WALL, stampOf, type Hlc } from './stamp.ts';

const cmp = (a: Hlc, b: Hlc): number =>
  compareStamps(stampOf(a, { writer: 'w', seq: 0 }), stampOf(b, { writer: 'w', seq: 0 }));

describe('hybrid logical clock', () => {
  it('readings strictly increase, whatever the physical clock does, and merge remote stamps', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ pt: fc.integer({ min: 0, max: 50 }) }),
            fc.record({
              pt: fc.integer({ min: 0, max: 50 }),
              remote: fc.record({ wall: fc.integer({ min: 0, max: 60 }), counter: fc.integer({ min: 0, max: 3 }) }),
            }),
          ),
          { maxLength: 60 },
        ),
        (steps) => {
          let pt = 0;
          const clock = createHybridClock({ physicalNow: () => pt });
          let last: Hlc = { wall: -1, counter: 0 };
          for (const step of steps) {
            pt = step.pt;
            if ('remote' in step) {
              clock.recv(step.remote);
              const now = clock.now();
              expect(cmp(now, step.remote)).toBeGreaterThan(0);
              last = now;
            } else {
              const now = clock.now();
              expect(cmp(now, last)).toBeGreaterThan(0);
              expect(now.wall).toBeGreaterThanOrEqual(pt);
              last = now;
            }
          }
        },
      ),
    );
  });

  it('a device clock one hour behind still stamps in order after a recv', () => {
    const clock = createHybridClock({ physicalNow: () => 1_000_000 - 3_600_000 });
    clock.recv({ wall: 1_000_000, counter: 4 });
    expect(clock.now()).toEqual({ wall: 1_000_000, counter: 6 });
  });

  it('the counter overflows at 65,535 by bumping wall', () => {
    const clock = createHybridClock({ physicalNow: () => 10, start: { wall: 10, counter: MAX_COUNTER - 1 } });
    expect(clock.now()).toEqual({ wall: 10, counter: MAX_COUNTER });
    expect(clock.now()).toEqual({ wall: 11, counter: 0 });
  });

  it('refuses to jump to a remote stamp more than maxOffsetMs ahead', () => {
    const clock = createHybridClock({ physicalNow: () => 1000, maxOffsetMs: 500 });
    let error: unknown;
    try {
      clock.recv({ wall: 1501, counter: 0 });
    } catch (e) {
      error = e;
    }
    expect(isTwinlogError(error, 'STAMP_SKEW')).toBe(true);
    expect(clock.now().wall).toBe(1000);
  });
});

describe('stamp wire form', () => {
  const hlc = fc.record({
    wall: fc.integer({ min: 0, max: MAX_WALL }),
    counter: fc.integer({ min: 0, max: MAX_COUNTER }),
  });
  it('round-trips at the extremes', () => {
    for (const h of [
      { wall: MAX_WALL, counter: MAX_COUNTER },
      { wall: 0, counter: 0 },
      { wall: 2 ** 32, counter: 1 },
    ]) {
      expect(decodeHlc(encodeHlc(h))).toEqual(h);
    }
    expect([...encodeHlc({ wall: MAX_WALL, counter: MAX_COUNTER })]).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
  });
  it('round-trips and byte order equals stamp order', () => {
    fc.assert(
      fc.property(hlc, hlc, (a, b) => {
        expect(decodeHlc(encodeHlc(a))).toEqual(a);
        const ea = encodeHlc(a);
        const eb = encodeHlc(b);
        let byteCmp = 0;
        for (let i = 0; i < 8 && byteCmp === 0; i++) byteCmp = ea[i]! - eb[i]!;
        expect(Math.sign(byteCmp)).toBe(Math.sign(cmp(a, b)));
      }),
    );
  });
});
