/**
 * Upcasting old envelope shapes on read (docs/formats.md, "Events": old events are upcast when read,
 * never rewritten in the log).
 */

/**
 * Turns the raw decoded map of envelope version `n` into the shape of version `n + 1`. It receives
 * the map exactly as decoded (strings, numbers, booleans, `null`, arrays, plain objects and
 * `Uint8Array` for binary, e.g. the 8-byte `stamp`), already checked for limits, forbidden keys and
 * duplicate keys, and must not mutate it. The decoder sets `v` to `n + 1` on the result, then
 * applies the next step; the final shape is validated like any current-version record.
 *
 * An upcaster that throws makes the record undecodable: a thrown `TwinlogError` escapes as is,
 * anything else is wrapped as `CODEC_BAD_DATA`.
 */
export type Upcaster = (raw: Readonly<Record<string, unknown>>) => Record<string, unknown>;

/** Upcasters keyed by the version they read: `{ 0: v0ToV1, 1: v1ToV2 }`. */
export type Upcasters = Readonly<Record<number, Upcaster>>;

/**
 * The upcasters twinlog ships, keyed by source version, applied by {@link decodeEvent} in sequence
 * until {@link ENVELOPE_VERSION}. Empty while version 1 is the only version ever written.
 *
 * When the envelope changes: bump `ENVELOPE_VERSION` in core, add the step from the old version
 * here, and add a golden fixture of the old shape (CONTRIBUTING.md, "Wire formats").
 *
 * @example
 * // A caller with private legacy records extends the shipped set rather than replacing it:
 * decodeEvent(bytes, { upcasters: { ...ENVELOPE_UPCASTERS, 0: (raw) => ({ ...raw, op: 'merge' }) } })
 */
export const ENVELOPE_UPCASTERS: Upcasters = Object.freeze({});
