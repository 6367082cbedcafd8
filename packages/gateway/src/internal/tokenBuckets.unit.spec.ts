import { describe, expect, it } from 'vitest';
import { createTokenBuckets } from './tokenBuckets.ts';

describe('createTokenBuckets', () => {
  it('allows the burst at once, then the rate, per key', () => {
    let t = 0;
    const buckets = createTokenBuckets({ ratePerSecond: 10, burst: 3, maxKeys: 10, now: () => t });
    expect([1, 2, 3, 4].map(() => buckets.take('a'))).toEqual([true, true, true, false]);
    expect(buckets.take('b')).toBe(true); // another key has its own bucket
    t += 99;
    expect(buckets.take('a')).toBe(false); // 0.99 of a token
    t += 1;
    expect(buckets.take('a')).toBe(true); // one token per 100 ms
    expect(buckets.take('a')).toBe(false);
    t += 10_000;
    expect([1, 2, 3, 4].map(() => buckets.take('a'))).toEqual([true, true, true, false]); // refilled to the burst, not beyond
  });

  it('refills nothing while the clock steps back', () => {
    let t = 1_000;
    const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 10, now: () => t });
    expect(buckets.take('a')).toBe(true);
    t = 0;
    expect(buckets.take('a')).toBe(false);
    t = 1_999;
    expect(buckets.take('a')).toBe(false);
    t = 2_000;
    expect(buckets.take('a')).toBe(true);
  });

  it('forgets refilled buckets, so idle keys cost nothing', () => {
    let t = 0;
    const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 2, maxKeys: 1_000, now: () => t });
    for (let i = 0; i < 100; i++) buckets.take(`dev${i}`);
    expect(buckets.size).toBe(100);
    t += 1_000; // every bucket has refilled
    buckets.take('fresh');
    expect(buckets.size).toBe(1);
  });

  it('never holds more than maxKeys buckets, forgetting the least recently used first', () => {
    const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 3, now: () => 0 });
    for (const k of ['a', 'b', 'c']) expect(buckets.take(k)).toBe(true);
    expect(buckets.take('a')).toBe(false); // a is now the most recent
    expect(buckets.take('d')).toBe(true); // b is forgotten
    expect(buckets.size).toBe(3);
    expect(buckets.take('a')).toBe(false); // a was kept: still empty
    expect(buckets.take('b')).toBe(true); // b starts again full
    for (let i = 0; i < 10_000; i++) buckets.take(`k${i}`);
    expect(buckets.size).toBe(3);
  });

  it('refuses nonsense options', () => {
    expect(() => createTokenBuckets({ ratePerSecond: 0, burst: 1, maxKeys: 1, now: () => 0 })).toThrow(RangeError);
    expect(() => createTokenBuckets({ ratePerSecond: 1, burst: 0, maxKeys: 1, now: () => 0 })).toThrow(RangeError);
    expect(() => createTokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 0, now: () => 0 })).toThrow(RangeError);
  });

  it('canTake looks without taking', () => {
    let t = 0;
    const b = createTokenBuckets({ ratePerSecond: 1, burst: 2, maxKeys: 10, now: () => t });
    expect([
      b.canTake('a'),
      b.canTake('a'),
      b.take('a'),
      b.canTake('a'),
      b.take('a'),
      b.canTake('a'),
      b.take('a'),
    ]).toEqual([true, true, true, true, true, false, false]);
    t = 1000;
    expect(b.canTake('a')).toBe(true);
  });
});
