/**
 * Length and depth limits for decoding hostile bytes, with the defaults of each decoder.
 *
 * Every limit is checked before the decoder allocates anything for the item it guards (a
 * pre-scan walks the msgpack framing first), so a 20-byte input cannot claim a 4 GiB array.
 */

/**
 * Limits a decoder enforces on untrusted bytes. Each is an integer ≥ 0, or `Infinity` for none;
 * an omitted limit takes the decoder's default ({@link DEFAULT_EVENT_LIMITS} or
 * {@link DEFAULT_SNAPSHOT_LIMITS}). Breaching one throws `CODEC_LIMIT_EXCEEDED`.
 *
 * @example
 * decodeEvent(bytes, { maxBytes: 64 * 1024, maxDepth: 14 })
 */
export interface DecodeLimits {
  /** Largest accepted input, in bytes (checked first, before any parsing). */
  readonly maxBytes?: number;
  /**
   * Deepest nesting of maps and arrays: the root container is depth 1, so an event's `patch` map
   * is depth 2 and a patch nested ten levels below the section root reaches depth 12. Empty
   * containers count like full ones.
   */
  readonly maxDepth?: number;
  /** Longest string (value or map key), in UTF-8 bytes. */
  readonly maxStrLength?: number;
  /** Longest binary value, in bytes. */
  readonly maxBinLength?: number;
  /** Most elements in one array. */
  readonly maxArrayLength?: number;
  /** Most entries (key/value pairs) in one map. */
  readonly maxMapLength?: number;
}

/** {@link DecodeLimits} with every field present. */
export type ResolvedDecodeLimits = { readonly [K in keyof DecodeLimits]-?: number };

/**
 * Defaults of {@link decodeEvent}: generous for IoT Hub-sized records (sections ≤ 32 KB, strings
 * ≤ 4 KB, depth ≤ 10 below the section root) yet bounded.
 *
 * | limit | default |
 * |---|---|
 * | `maxBytes` | 262 144 (256 KiB) |
 * | `maxDepth` | 16 |
 * | `maxStrLength` | 65 536 |
 * | `maxBinLength` | 65 536 |
 * | `maxArrayLength` | 65 536 |
 * | `maxMapLength` | 65 536 |
 *
 * @example
 * decodeEvent(bytes, { ...DEFAULT_EVENT_LIMITS, maxBytes: 1 << 20 })
 */
export const DEFAULT_EVENT_LIMITS: ResolvedDecodeLimits = Object.freeze({
  maxBytes: 256 * 1024,
  maxDepth: 16,
  maxStrLength: 64 * 1024,
  maxBinLength: 64 * 1024,
  maxArrayLength: 64 * 1024,
  maxMapLength: 64 * 1024,
});

/**
 * Defaults of {@link decodeSnapshot}: a snapshot holds a whole twin plus fold state, so the
 * limits are wider than an event's. {@link encodeSnapshot} refuses values nested deeper than
 * this `maxDepth`, so what it writes always decodes with these defaults (size aside).
 *
 * | limit | default |
 * |---|---|
 * | `maxBytes` | 16 777 216 (16 MiB) |
 * | `maxDepth` | 64 |
 * | `maxStrLength` | 1 048 576 |
 * | `maxBinLength` | 1 048 576 |
 * | `maxArrayLength` | 1 048 576 |
 * | `maxMapLength` | 1 048 576 |
 *
 * @example
 * decodeSnapshot(bytes, { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes: 64 << 20 })
 */
export const DEFAULT_SNAPSHOT_LIMITS: ResolvedDecodeLimits = Object.freeze({
  maxBytes: 16 * 1024 * 1024,
  maxDepth: 64,
  maxStrLength: 1024 * 1024,
  maxBinLength: 1024 * 1024,
  maxArrayLength: 1024 * 1024,
  maxMapLength: 1024 * 1024,
});
