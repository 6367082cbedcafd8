/**
 * Stamps and the total order of the fold (docs/fold.md, "The total order").
 *
 * A stamp is `(wall, counter, writer, seq, op)` compared lexicographically. `wall` (ms, < 2^48) and
 * `counter` (0..65535) are kept as separate numbers: packed into one JS number they would exceed
 * 2^53. The 8-byte wire form is big-endian `wall << 16 | counter`, built from two uint32 halves so no
 * intermediate value passes 2^53.
 */

declare const brand: unique symbol;
/** A string branded as a particular kind of id. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };
export type DeviceId = Brand<string, 'DeviceId'>;

/** A hybrid logical clock reading, as carried by an event. */
export interface Hlc {
  readonly wall: number;
  readonly counter: number;
}

/** The envelope's `id`: writer id + writer sequence (the dot). Duplicates share it. */
export interface Dot {
  readonly writer: string;
  readonly seq: number;
}

/** The total-order key of a register: the event's HLC, its dot, and 0 for a clear / 1 for a write. */
export interface Stamp {
  readonly wall: number;
  readonly counter: number;
  readonly writer: string;
  readonly seq: number;
  readonly op: 0 | 1;
}

/** Below every real stamp. */
export const MIN_STAMP: Stamp = Object.freeze({ wall: -1, counter: 0, writer: '', seq: 0, op: 0 });

/** Largest wall clock a stamp may carry (2^48 − 1 ms, year 10889). */
export const MAX_WALL = 2 ** 48 - 1;
export const MAX_COUNTER = 0xffff;

/** Lexicographic comparison on (wall, counter, writer, seq, op): negative, zero or positive. */
export function compareStamps(a: Stamp, b: Stamp): number {
  return (
    a.wall - b.wall ||
    a.counter - b.counter ||
    (a.writer === b.writer ? 0 : a.writer < b.writer ? -1 : 1) ||
    a.seq - b.seq ||
    a.op - b.op
  );
}

export function maxStamp(a: Stamp, b: Stamp): Stamp {
  return compareStamps(a, b) >= 0 ? a : b;
}

/** The stamp of an event's writes (`op` 1) or of a replace's clear (`op` 0). */
export function stampOf(hlc: Hlc, id: Dot, op: 0 | 1 = 1): Stamp {
  return { wall: hlc.wall, counter: hlc.counter, writer: id.writer, seq: id.seq, op };
}

/** The dedupe key of a dot. Writer ids may contain any character but NUL, so NUL separates. */
export function dotKey(id: Dot): string {
  return id.writer + '\u0000' + id.seq;
}

/** True when `h` is a valid HLC reading (integers in range). */
export function isValidHlc(h: Hlc): boolean {
  return (
    Number.isInteger(h.wall) &&
    h.wall >= 0 &&
    h.wall <= MAX_WALL &&
    Number.isInteger(h.counter) &&
    h.counter >= 0 &&
    h.counter <= MAX_COUNTER
  );
}

/** The 8-byte big-endian wire form of an HLC; byte order equals stamp order. */
export function encodeHlc(h: Hlc): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(h.wall / 65536));
  view.setUint32(4, (h.wall % 65536) * 65536 + h.counter);
  return out;
}

/** Inverse of {@link encodeHlc}; `bytes` must be exactly 8 bytes. */
export function decodeHlc(bytes: Uint8Array): Hlc {
  // by hand, not through a DataView: this runs for every event decoded
  const hi = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const lo = ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0;
  return { wall: hi * 65536 + (lo >>> 16), counter: lo & 0xffff };
}

const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00Z: below it (and from the epoch) every ISO form has a 4-digit year. */
const FAST_END = 253_402_300_800_000;
const pad = (n: number, width: number): string[] => Array.from({ length: n }, (_, i) => String(i).padStart(width, '0'));
const TWO = pad(60, 2);
const THREE = pad(1000, 3);
/** The last day formatted, and its `YYYY-MM-DDT` (most stamps formatted in a row share their day). */
let lastDay = -1;
let dayText = '';

/**
 * ISO-8601 UTC with milliseconds, for `$lastUpdated` and audit entries: what `Date#toISOString`
 * returns. An audit formats one per event, so a whole millisecond from the epoch to the year 9999
 * takes its day from a one-entry cache and its time of day from tables, not a `Date` each.
 */
export function isoOf(wall: number): string {
  if (!Number.isInteger(wall) || wall < 0 || wall >= FAST_END) return new Date(wall).toISOString();
  const day = Math.floor(wall / DAY_MS);
  if (day !== lastDay) {
    dayText = new Date(day * DAY_MS).toISOString().slice(0, 11);
    lastDay = day;
  }
  let rest = wall - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  return `${dayText}${TWO[h]!}:${TWO[m]!}:${TWO[sec]!}.${THREE[rest - sec * 1000]!}Z`;
}
