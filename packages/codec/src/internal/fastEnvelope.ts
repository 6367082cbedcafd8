/**
 * The fast path of event decoding (docs/write-path.md, "Replay"): one pass over the bytes of an
 * ordinary current-version envelope that builds the same raw map the general path
 * (`scanMsgpack` + msgpack-javascript + `checkPlainData`) would build (into one reused record of the
 * envelope's fields), or gives up.
 *
 * It accepts only the common, unambiguous case — ASCII strings up to 64 KiB, map and array
 * headers up to 16 bits, integers up to 32 bits, finite floats, `bin` only as an envelope field,
 * no repeated or forbidden key, nothing deeper than the default depth, nothing after the map, within
 * the default limits — and returns `undefined` for anything else, so the general path, with its
 * exact errors, decides every unusual or hostile input. Whatever it returns, the general path
 * would have returned too (`fastEnvelope.unit.spec.ts` checks this as a property).
 *
 * Short strings (≤ 16 bytes: map keys, device ids, small values) come from a fixed-size cache of
 * 4,096 entries, so repeated keys are one string instance, as msgpack-javascript's key cache makes
 * them, and cost no allocation.
 */
import type { ResolvedDecodeLimits } from '../decodeLimits.ts';
import { FORBIDDEN_KEYS } from './decodeMsgpack.ts';

const GIVE_UP = Symbol('give up');
type Value = unknown;

let bytes: Uint8Array = new Uint8Array(0);
/** A view of `bytes` for floats, made on the first float of an input (most events have none). */
let floats: DataView | undefined;
let pos = 0;
let maxDepth = 0;

const CACHE_SIZE = 4096;
const CACHED_MAX = 16;
const cache: (string | undefined)[] = new Array<string | undefined>(CACHE_SIZE).fill(undefined);

/** An ASCII string of `len` bytes at `pos`, or GIVE_UP for any byte ≥ 0x80. */
function ascii(len: number): string | typeof GIVE_UP {
  const start = pos;
  const end = start + len;
  if (end > bytes.length) return GIVE_UP;
  pos = end;
  if (len <= CACHED_MAX) {
    let h = len;
    for (let i = start; i < end; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) return GIVE_UP;
      h = (Math.imul(h, 31) + b) | 0;
    }
    const slot = h & (CACHE_SIZE - 1);
    const hit = cache[slot];
    if (hit !== undefined && hit.length === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (hit.charCodeAt(i) !== bytes[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return hit;
    }
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
    cache[slot] = s;
    return s;
  }
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return GIVE_UP;
  let s = '';
  for (let at = start; at < end; at += 4096) s += String.fromCharCode(...bytes.subarray(at, Math.min(end, at + 4096)));
  return s;
}

/** Big-endian unsigned integers at `at` (bounds checked by the caller). */
function u16(at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function u32(at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function floatView(): DataView {
  return (floats ??= new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

function strLength(b: number): number {
  if (b >= 0xa0 && b <= 0xbf) return b - 0xa0;
  if (b === 0xd9) return pos < bytes.length ? bytes[pos++]! : -1;
  if (b === 0xda) {
    if (pos + 2 > bytes.length) return -1;
    pos += 2;
    return u16(pos - 2);
  }
  return -1;
}

function key(): string | typeof GIVE_UP {
  if (pos >= bytes.length) return GIVE_UP;
  const len = strLength(bytes[pos++]!);
  if (len < 0) return GIVE_UP;
  const k = ascii(len);
  return k === GIVE_UP || FORBIDDEN_KEYS.has(k) ? GIVE_UP : k;
}

/** The envelope's fields (docs/formats.md, "Events"), each with its bit in a seen-mask. */
export const ENVELOPE_FIELDS = [
  'v',
  'id',
  'deviceId',
  'section',
  'op',
  'patch',
  'stamp',
  'cond',
  'actor',
  'corr',
] as const;
const FIELD_BIT: ReadonlyMap<string, number> = new Map(ENVELOPE_FIELDS.map((f, i) => [f, 1 << i]));

/**
 * The envelope of the input being decoded: one record of fixed shape, reused (a map built key by
 * key allocates and regrows its property store for every record). A field absent from the input is
 * `undefined`, as it reads in the general path's map.
 */
const envelope: Record<(typeof ENVELOPE_FIELDS)[number], unknown> = {
  v: undefined,
  id: undefined,
  deviceId: undefined,
  section: undefined,
  op: undefined,
  patch: undefined,
  stamp: undefined,
  cond: undefined,
  actor: undefined,
  corr: undefined,
};
/** The stamp's 8 bytes, copied out of the input (the common `bin 8` stamp costs no view). */
const stamp = new Uint8Array(8);

/** The top-level map of `n` entries into {@link envelope}; an unknown field leaves the fast path. */
function envelopeMap(n: number): Value {
  if (n > bytes.length - pos) return GIVE_UP;
  // named stores, not a loop of keyed ones: this runs for every record a replay reads
  const e = envelope;
  e.v = e.id = e.deviceId = e.section = e.op = e.patch = e.stamp = e.cond = e.actor = e.corr = undefined;
  let seen = 0;
  for (let i = 0; i < n; i++) {
    const k = key();
    if (k === GIVE_UP) return GIVE_UP;
    const bit = FIELD_BIT.get(k);
    if (bit === undefined || (seen & bit) !== 0) return GIVE_UP;
    seen |= bit;
    if (k === 'stamp' && pos + 10 <= bytes.length && bytes[pos] === 0xc4 && bytes[pos + 1] === 8) {
      for (let j = 0; j < 8; j++) stamp[j] = bytes[pos + 2 + j]!;
      pos += 10;
      e.stamp = stamp;
      continue;
    }
    const v = value(1, true);
    if (v === GIVE_UP) return GIVE_UP;
    switch (k) {
      case 'v':
        e.v = v;
        break;
      case 'id':
        e.id = v;
        break;
      case 'deviceId':
        e.deviceId = v;
        break;
      case 'section':
        e.section = v;
        break;
      case 'op':
        e.op = v;
        break;
      case 'patch':
        e.patch = v;
        break;
      case 'stamp':
        e.stamp = v;
        break;
      case 'cond':
        e.cond = v;
        break;
      case 'actor':
        e.actor = v;
        break;
      case 'corr':
        e.corr = v;
    }
  }
  return e;
}

function map(n: number, depth: number): Value {
  if (depth > maxDepth || n > bytes.length - pos) return GIVE_UP;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = key();
    if (k === GIVE_UP || Object.hasOwn(out, k)) return GIVE_UP;
    const v = value(depth, depth === 1);
    if (v === GIVE_UP) return GIVE_UP;
    out[k] = v;
  }
  return out;
}

function array(n: number, depth: number): Value {
  if (depth > maxDepth || n > bytes.length - pos) return GIVE_UP;
  // sized up front: a pushed-to array starts with room for 17 elements
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    const v = value(depth, false);
    if (v === GIVE_UP) return GIVE_UP;
    out[i] = v;
  }
  return out;
}

function need(n: number): boolean {
  return pos + n <= bytes.length;
}

/** The value at `pos`, inside a container at `depth`; `binOk` only for envelope fields. */
function value(depth: number, binOk: boolean): Value {
  if (pos >= bytes.length) return GIVE_UP;
  const b = bytes[pos++]!;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return ascii(b - 0xa0);
  if (b >= 0x80 && b <= 0x8f) return map(b - 0x80, depth + 1);
  if (b >= 0x90 && b <= 0x9f) return array(b - 0x90, depth + 1);
  let v: number;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4: {
      if (!binOk || !need(1)) return GIVE_UP;
      const len = bytes[pos++]!;
      if (!need(len)) return GIVE_UP;
      pos += len;
      // a plain view: subarray of a Buffer builds a Buffer, which costs more
      return new Uint8Array(bytes.buffer, bytes.byteOffset + pos - len, len);
    }
    case 0xca:
      if (!need(4)) return GIVE_UP;
      v = floatView().getFloat32(pos);
      pos += 4;
      return Number.isFinite(v) ? v : GIVE_UP;
    case 0xcb:
      if (!need(8)) return GIVE_UP;
      v = floatView().getFloat64(pos);
      pos += 8;
      return Number.isFinite(v) ? v : GIVE_UP;
    case 0xcc:
      return need(1) ? bytes[pos++]! : GIVE_UP;
    case 0xcd:
      if (!need(2)) return GIVE_UP;
      pos += 2;
      return u16(pos - 2);
    case 0xce:
      if (!need(4)) return GIVE_UP;
      pos += 4;
      return u32(pos - 4);
    case 0xd0:
      if (!need(1)) return GIVE_UP;
      return (bytes[pos++]! << 24) >> 24;
    case 0xd1:
      if (!need(2)) return GIVE_UP;
      pos += 2;
      return (u16(pos - 2) << 16) >> 16;
    case 0xd2:
      if (!need(4)) return GIVE_UP;
      pos += 4;
      return u32(pos - 4) | 0;
    case 0xd9:
    case 0xda: {
      const len = strLength(b);
      return len < 0 ? GIVE_UP : ascii(len);
    }
    case 0xdc:
      if (!need(2)) return GIVE_UP;
      pos += 2;
      return array(u16(pos - 2), depth + 1);
    case 0xde:
      if (!need(2)) return GIVE_UP;
      pos += 2;
      return map(u16(pos - 2), depth + 1);
    default:
      return GIVE_UP; // 64-bit integers, str/bin/array/map 32, bin 16/32, ext, 0xc1: the general path decides
  }
}

/**
 * The raw envelope map of `input`, decoded in one pass, or `undefined` when the input is anything
 * but an ordinary well-formed envelope within `limits` (the general path then decodes it).
 * `limits` must be at least as wide as 64 KiB for strings, maps and arrays.
 *
 * The map returned, and the stamp bytes in it, are reused by the next call: read them first. Its
 * absent fields are `undefined`; an unknown field returns `undefined` (the general path names it).
 */
export function fastEnvelope(input: Uint8Array, limits: ResolvedDecodeLimits): Record<string, unknown> | undefined {
  if (input.length > limits.maxBytes || input.length === 0) return undefined;
  bytes = input;
  pos = 0;
  maxDepth = limits.maxDepth;
  try {
    const b = bytes[pos++]!;
    let raw: Value;
    if (b >= 0x80 && b <= 0x8f) raw = envelopeMap(b - 0x80);
    else if (b === 0xde && need(2)) {
      pos += 2;
      raw = envelopeMap(u16(pos - 2));
    } else return undefined;
    return raw === GIVE_UP || pos !== bytes.length ? undefined : (raw as Record<string, unknown>);
  } finally {
    bytes = EMPTY;
    floats = undefined;
  }
}

const EMPTY = new Uint8Array(0);
