/**
 * Token buckets by key (a policy, a device-scoped token), for the REST gateway's admission limit
 * (iot-hub-twin.md §12: IoT Hub answers 429 `ThrottlingException` over its rates).
 *
 * Each key's bucket holds up to `burst` tokens and refills at `ratePerSecond`; a new key starts
 * full. The map is bounded: at `maxKeys` keys, the least recently used key is evicted (it comes
 * back full), so memory stays bounded whatever keys callers invent. A clock that steps back refills
 * nothing (no negative refill, no error).
 */

/** Options of {@link createRateBuckets}. */
export interface RateBucketOptions {
  /** Tokens added per second (sustained rate). */
  readonly ratePerSecond: number;
  /** Bucket size (largest burst). */
  readonly burst: number;
  /** Keys kept at most (default 10 000); the least recently used goes first. */
  readonly maxKeys?: number;
  /** Clock, ms. */
  readonly now: () => number;
}

/** Buckets by key (see the module comment). */
export interface RateBuckets {
  /** Whether `key`'s bucket holds a whole token now. */
  canTake(key: string): boolean;
  /** Take one token from `key`'s bucket if it has one; returns whether it did. */
  take(key: string): boolean;
  /** Keys tracked now (at most `maxKeys`). */
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Create a set of token buckets.
 *
 * @example
 * const perPolicy = createRateBuckets({ ratePerSecond: 200, burst: 1000, now: Date.now })
 * if (!perPolicy.take('iothubowner')) throw throttled()
 * @throws {RangeError} when `ratePerSecond` is negative, `burst` below 1 or `maxKeys` below 1.
 */
export function createRateBuckets({ ratePerSecond, burst, maxKeys = 10_000, now }: RateBucketOptions): RateBuckets {
  if (!(ratePerSecond >= 0) || !(burst >= 1) || !(maxKeys >= 1)) {
    throw new RangeError(`token buckets need ratePerSecond >= 0, burst >= 1 and maxKeys >= 1, got ${ratePerSecond}, ${burst}, ${maxKeys}`);
  }
  const buckets = new Map<string, Bucket>();

  const bucketOf = (key: string): Bucket => {
    const t = now();
    let b = buckets.get(key);
    if (b === undefined) {
      b = { tokens: burst, at: t };
      if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
      }
    } else {
      buckets.delete(key); // re-inserted below: Map order is the recency order
      if (t > b.at) b.tokens = Math.min(burst, b.tokens + ((t - b.at) * ratePerSecond) / 1000);
      b.at = t;
    }
    buckets.set(key, b);
    return b;
  };

  return {
    canTake: (key) => bucketOf(key).tokens >= 1,
    take(key) {
      const b = bucketOf(key);
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },
    get size() {
      return buckets.size;
    },
  };
}
