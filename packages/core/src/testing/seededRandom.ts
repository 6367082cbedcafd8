/**
 * A deterministic PRNG (mulberry32) for workloads that must be the same on every run: benchmarks,
 * crash tests. Not for anything security-related.
 *
 * @example
 * const rnd = seededRandom(42)
 * rnd() // the same number in [0, 1) on every run
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
