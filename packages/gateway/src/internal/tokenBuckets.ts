/**
 * Token buckets by key (the MQTT gateway's per-device request rate, the REST gateway's admission
 * per policy and per device-scoped token; docs/security.md): each key
 * has a bucket of `burst` tokens that refills at `ratePerSecond`; a request takes one token, and a
 * key whose bucket is empty is refused. Memory is bounded: a bucket that has refilled holds no
 * information and is forgotten, and no more than `maxKeys` buckets are kept (past that, the least
 * recently used is forgotten first).
 */

/**
 * Options of {@link createTokenBuckets}.
 *
 * @example
 * const options: TokenBucketsOptions = { ratePerSecond: 100, burst: 200, maxKeys: 100_000, now: Date.now }
 */
export interface TokenBucketsOptions {
  /** Tokens added per second to every bucket (> 0). */
  readonly ratePerSecond: number;
  /** A bucket's size (≥ 1): the requests a key may make at once. */
  readonly burst: number;
  /** Buckets kept at once (≥ 1). */
  readonly maxKeys: number;
  /** Clock, ms. A clock that steps back refills nothing until it passes its last reading again. */
  readonly now: () => number;
}

/**
 * The buckets (see {@link createTokenBuckets}).
 *
 * @example
 * if (!buckets.take(deviceId)) disconnect(deviceId)
 */
export interface TokenBuckets {
  /** Whether `key`'s bucket holds a whole token now (takes nothing). */
  canTake(key: string): boolean;
  /** Take a token from `key`'s bucket: false when it is empty (the request is refused; nothing is owed). */
  take(key: string): boolean;
  /** Buckets held now (at most `maxKeys`). */
  readonly size: number;
}

interface Bucket {
  readonly tokens: number;
  readonly at: number;
}

/**
 * Create token buckets by key.
 *
 * Each `take` costs O(1) amortised: it refills the key's bucket for the time since its last use,
 * moves the key to the recent end of a `Map` (insertion order is recency order), then forgets
 * buckets from the least recent end while they have refilled or while there are more than
 * `maxKeys`. A forgotten key starts again with a full bucket.
 *
 * @throws RangeError when `ratePerSecond` is not a positive number, or `burst` or `maxKeys` is below 1.
 * @example
 * const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 2, maxKeys: 10, now: () => 0 })
 * buckets.take('dev1') // true
 * buckets.take('dev1') // true
 * buckets.take('dev1') // false: empty, and this clock never moves
 */
export function createTokenBuckets({ ratePerSecond, burst, maxKeys, now }: TokenBucketsOptions): TokenBuckets {
  if (!(ratePerSecond > 0 && Number.isFinite(ratePerSecond)) || !(burst >= 1) || !(maxKeys >= 1)) {
    throw new RangeError(
      `token buckets need ratePerSecond > 0, burst >= 1 and maxKeys >= 1, got ${ratePerSecond}, ${burst}, ${maxKeys}`,
    );
  }
  const perMs = ratePerSecond / 1000;
  const buckets = new Map<string, Bucket>();
  const level = (b: Bucket, t: number): number => Math.min(burst, b.tokens + Math.max(0, t - b.at) * perMs);

  return {
    canTake(key) {
      const b = buckets.get(key);
      return b === undefined || level(b, now()) >= 1;
    },
    take(key) {
      const t = now();
      const b = buckets.get(key);
      let tokens = burst;
      if (b !== undefined) {
        tokens = level(b, t);
        buckets.delete(key);
      }
      const ok = tokens >= 1;
      buckets.set(key, { tokens: ok ? tokens - 1 : tokens, at: b === undefined ? t : Math.max(t, b.at) });
      for (const [k, old] of buckets) {
        if (k === key) break;
        if (buckets.size <= maxKeys && level(old, t) < burst) break;
        buckets.delete(k);
      }
      return ok;
    },
    get size() {
      return buckets.size;
    },
  };
}
