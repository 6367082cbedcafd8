/** Small summaries the pipeline benchmark prints: medians, ranges, percentiles. */

/** Median of `xs` (mean of the two middle values for an even count), NaN for none. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function range(xs: readonly number[]): { min: number; max: number } {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? { min: Number.NaN, max: Number.NaN } : { min: Math.min(...s), max: Math.max(...s) };
}

/** The `p`th percentile (nearest rank) of `xs`, NaN for none. Sorts a copy. */
export function percentile(xs: ArrayLike<number>, p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Least-squares slope of y over x (units of y per unit of x), NaN with fewer than two points. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}
