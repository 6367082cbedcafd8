import { describe, expect, it } from 'vitest';
import { createRateBuckets } from './rateBuckets.ts';

describe('createRateBuckets', () => {
  it('allows a burst, then the sustained rate, per key', () => {
    let t = 0;
    const b = createRateBuckets({ ratePerSecond: 2, burst: 3, now: () => t });
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, true, false]);
    expect(b.take('b')).toBe(true); // another key has its own bucket
    t = 499;
    expect(b.canTake('a')).toBe(false);
    t = 500; // 2/s: one token after 500 ms
    expect(b.canTake('a')).toBe(true);
    expect([b.take('a'), b.take('a')]).toEqual([true, false]);
    t = 100_000; // refills to the burst, not beyond
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, true, false]);
  });

  it('canTake takes nothing', () => {
    const b = createRateBuckets({ ratePerSecond: 0, burst: 1, now: () => 0 });
    expect([b.canTake('a'), b.canTake('a'), b.take('a'), b.canTake('a'), b.take('a')]).toEqual([true, true, true, false, false]);
  });

  it('a clock stepping back refills nothing', () => {
    let t = 10_000;
    const b = createRateBuckets({ ratePerSecond: 1, burst: 1, now: () => t });
    expect(b.take('a')).toBe(true);
    t = 0;
    expect(b.take('a')).toBe(false);
    t = 999;
    expect(b.take('a')).toBe(false);
    t = 1000;
    expect(b.take('a')).toBe(true);
  });

  it('keeps at most maxKeys keys, evicting the least recently used', () => {
    const b = createRateBuckets({ ratePerSecond: 0, burst: 1, maxKeys: 3, now: () => 0 });
    for (const k of ['a', 'b', 'c']) expect(b.take(k)).toBe(true);
    expect(b.canTake('a')).toBe(false); // touches a: b is now the least recently used
    expect(b.take('d')).toBe(true); // evicts b
    expect(b.size).toBe(3);
    expect(b.canTake('a')).toBe(false); // a was kept
    expect(b.canTake('c')).toBe(false);
    expect(b.take('b')).toBe(true); // b came back full (evicting d)
    for (let i = 0; i < 10_000; i++) b.take(`k${i}`);
    expect(b.size).toBe(3);
  });

  it('refuses nonsense options', () => {
    expect(() => createRateBuckets({ ratePerSecond: -1, burst: 1, now: () => 0 })).toThrow(RangeError);
    expect(() => createRateBuckets({ ratePerSecond: 1, burst: 0, now: () => 0 })).toThrow(RangeError);
    expect(() => createRateBuckets({ ratePerSecond: Number.NaN, burst: 1, now: () => 0 })).toThrow(RangeError);
  });
});
