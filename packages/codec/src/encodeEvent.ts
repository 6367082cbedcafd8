/**
 * The event envelope on the wire (docs/formats.md, "Events"): {@link encodeEvent} writes a
 * {@link TwinEvent} as msgpack, {@link decodeEvent} and {@link safeDecodeEvent} read one back from
 * untrusted bytes, upcasting old envelope versions on the way.
 */
import { Encoder } from '@msgpack/msgpack';
import {
  ENVELOPE_VERSION,
  TwinlogError,
  decodeHlc,
  encodeHlc,
  isTwinlogError,
  isValidHlc,
  type Condition,
  type EventKind,
  type Patch,
  type Result,
  type TwinEvent,
} from '@twinlog/core';
import { DEFAULT_EVENT_LIMITS, type DecodeLimits } from './decodeLimits.ts';
import { ENVELOPE_UPCASTERS, type Upcasters } from './envelopeUpcasters.ts';
import { checkPlainData, type PlainDataRules } from './internal/checkPlainData.ts';
import { decodeMsgpack, resolveLimits } from './internal/decodeMsgpack.ts';
import { ENVELOPE_FIELDS, fastEnvelope } from './internal/fastEnvelope.ts';
import { NO_EXTENSIONS } from './internal/noExtensions.ts';

/*
 * ── Envelope wire layout, version 1 ──────────────────────────────────────────────────────────────
 *
 * One msgpack map (fixmap: 8 entries, 9 or 10 with the optional ones). The encoder writes the keys
 * in this order; the decoder accepts any order but no other keys, no repeated key, and nothing
 * after the map.
 *
 *   key         msgpack type       value
 *   "v"         positive int       envelope version: 1 (ENVELOPE_VERSION); older ones are upcast
 *   "id"        array(2)           the dot: [ writer: str, seq: uint ]
 *                                    seq is a safe integer 0 ≤ seq < 2^53; written in the smallest
 *                                    uint form (uint 64 from 2^32 on); ≥ 2^53 is refused
 *   "deviceId"  str
 *   "section"   str                "tags" | "desired" | "reported" | "create" | "delete"
 *   "op"        str                "merge" | "replace"
 *   "patch"     map                JSON values only: str, int/float (finite), true/false, nil, array,
 *                                    map; no bin, no ext. `{}` for lifecycle events
 *   "stamp"     bin 8              HLC, big-endian  wall << 16 | counter  (core encodeHlc):
 *                                    bytes 0–5 wall ms (< 2^48), bytes 6–7 counter; byte order =
 *                                    stamp order
 *   "cond"      map (optional)     { "ifMatch"?: str, "ifVersion"?: uint, "key"?: str }; absent
 *                                    key = no condition (nil is not accepted); "key" is the
 *                                    idempotency key (docs/idempotency.md)
 *   "actor"     str
 *   "corr"      str (optional)     absent key = no correlation id
 *
 * Example: { v: 1, id: { writer: 'gw', seq: 7 }, deviceId: 'd1', section: 'desired', op: 'merge',
 *            patch: { t: 21 }, stamp: { wall: 1_700_000_000_000, counter: 3 }, actor: 'app' }
 *
 *   88                                   fixmap, 8 entries
 *   a1 76  01                            "v"        1
 *   a2 69 64  92 a2 67 77 07             "id"       [ "gw", 7 ]
 *   a8 64 65 76 69 63 65 49 64  a2 64 31 "deviceId" "d1"
 *   a7 73 65 63 74 69 6f 6e  a7 64 65 73 69 72 65 64
 *                                        "section"  "desired"
 *   a2 6f 70  a5 6d 65 72 67 65          "op"       "merge"
 *   a5 70 61 74 63 68  81 a1 74 15       "patch"    { "t": 21 }
 *   a5 73 74 61 6d 70  c4 08 01 8b cf e5 68 00 00 03
 *                                        "stamp"    bin 8: wall 0x018bcfe56800, counter 0x0003
 *   a5 61 63 74 6f 72  a3 61 70 70       "actor"    "app"
 *
 * Determinism: the envelope's keys always come in the order above, but `patch` keys are written in
 * insertion order, so equal events may differ in bytes. Events are deduplicated by `id`, never by
 * bytes; snapshots, which must compare by bytes, use encodeSnapshot (sorted keys).
 */

const KINDS: ReadonlySet<string> = new Set<EventKind>(['tags', 'desired', 'reported', 'create', 'delete']);
const MAX_SEQ = Number.MAX_SAFE_INTEGER; // 2^53 − 1

/** Reused for every call: `encode()` copies the bytes out, so the internal buffer can be shared. */
const encoder = new Encoder({ extensionCodec: NO_EXTENSIONS });

const ENCODE_PATCH_RULES: PlainDataRules = {
  code: 'EVENT_INVALID',
  what: 'patch',
  maxDepth: DEFAULT_EVENT_LIMITS.maxDepth,
  binary: 'reject',
};

function invalid(message: string, field: string): TwinlogError {
  return new TwinlogError('EVENT_INVALID', `cannot encode event: ${field} ${message}`, { details: { field } });
}

function isSeq(seq: unknown): seq is number {
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0;
}

function encodeCondition(cond: Condition): Record<string, unknown> {
  if (typeof cond !== 'object' || cond === null) throw invalid('must be an object', 'cond');
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(cond)) {
    if (key !== 'ifMatch' && key !== 'ifVersion' && key !== 'key')
      throw invalid(`has unknown key ${JSON.stringify(key)}`, 'cond');
  }
  if (cond.ifMatch !== undefined) {
    if (typeof cond.ifMatch !== 'string') throw invalid('must be a string', 'cond.ifMatch');
    out['ifMatch'] = cond.ifMatch;
  }
  if (cond.ifVersion !== undefined) {
    if (!isSeq(cond.ifVersion)) throw invalid('must be an integer in [0, 2^53)', 'cond.ifVersion');
    out['ifVersion'] = cond.ifVersion;
  }
  if (cond.key !== undefined) {
    if (typeof cond.key !== 'string') throw invalid('must be a string', 'cond.key');
    out['key'] = cond.key;
  }
  return out;
}

/**
 * Encode an event as the msgpack envelope (layout in the comment above this function). Use it to
 * write every record to the log; read records back with {@link decodeEvent}.
 *
 * The event is checked first, so the log never holds what the decoder would refuse: `v` must be
 * the current {@link ENVELOPE_VERSION}, `seq` an integer in [0, 2^53), the stamp a valid HLC, and
 * the patch plain JSON (finite numbers, no `undefined`, no class instances, no
 * `__proto__`/`constructor`/`prototype` keys, at most {@link DEFAULT_EVENT_LIMITS}`.maxDepth` deep
 * counting the envelope). IoT Hub rules (key characters, sizes, depth 10) are core's
 * `validatePatch`'s job, not this one's.
 *
 * Gotchas: `-0` is written as `0`; numbers that are not safe integers are written as float 64;
 * patch key order is kept as given, so bytes are not canonical (see {@link encodeSnapshot} for that).
 *
 * @example
 * const bytes = encodeEvent({
 *   v: ENVELOPE_VERSION, id: { writer: 'gw-7f3a9c', seq: 1 }, deviceId: 'dev-1', section: 'desired',
 *   op: 'merge', patch: { fan: { speed: 3 } }, stamp: { wall: Date.now(), counter: 0 }, actor: 'app-1',
 * })
 * decodeEvent(bytes) // deep-equals the event
 *
 * @throws {TwinlogError} `EVENT_INVALID` when a field has the wrong type or range or the patch is
 *   not plain JSON (`path` names the offending key); `CODEC_FORBIDDEN_KEY` for a forbidden patch
 *   key; `CODEC_LIMIT_EXCEEDED` when the patch is too deep.
 */
export function encodeEvent(event: TwinEvent): Uint8Array {
  if (typeof event !== 'object' || event === null) throw invalid('must be an object', 'event');
  const { id, stamp, patch, cond, corr } = event;
  if (event.v !== ENVELOPE_VERSION) {
    throw invalid(`must be the current envelope version ${ENVELOPE_VERSION}, got ${String(event.v)}`, 'v');
  }
  if (typeof id !== 'object' || id === null || typeof id.writer !== 'string')
    throw invalid('must be a string', 'id.writer');
  if (!isSeq(id.seq)) throw invalid('must be an integer in [0, 2^53)', 'id.seq');
  if (typeof event.deviceId !== 'string') throw invalid('must be a string', 'deviceId');
  if (!KINDS.has(event.section)) throw invalid(`is not a known kind: ${String(event.section)}`, 'section');
  if (event.op !== 'merge' && event.op !== 'replace')
    throw invalid(`is not merge or replace: ${String(event.op)}`, 'op');
  if (typeof stamp !== 'object' || stamp === null || !isValidHlc(stamp)) {
    throw invalid('must be a valid HLC (integer wall in [0, 2^48), counter in [0, 65535])', 'stamp');
  }
  if (typeof event.actor !== 'string') throw invalid('must be a string', 'actor');
  if (corr !== undefined && typeof corr !== 'string') throw invalid('must be a string', 'corr');
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw invalid('must be an object', 'patch');
  checkPlainData(patch, 2, ENCODE_PATCH_RULES);

  // Key order is the wire layout's; optional keys are omitted, never written as nil.
  const wire: Record<string, unknown> = {
    v: ENVELOPE_VERSION,
    id: [id.writer, id.seq],
    deviceId: event.deviceId,
    section: event.section,
    op: event.op,
    patch,
    stamp: encodeHlc(stamp),
  };
  if (cond !== undefined) wire['cond'] = encodeCondition(cond);
  wire['actor'] = event.actor;
  if (corr !== undefined) wire['corr'] = corr;
  try {
    return encoder.encode(wire);
  } catch (e) {
    if (isTwinlogError(e)) throw e;
    throw new TwinlogError('EVENT_INVALID', `cannot encode event: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

/**
 * Options of {@link decodeEvent}: the limits (defaults in {@link DEFAULT_EVENT_LIMITS}) and the
 * upcasters for old envelope versions.
 */
export interface DecodeOptions extends DecodeLimits {
  /**
   * Steps from envelope version `n` to `n + 1`, applied in sequence until {@link ENVELOPE_VERSION}.
   * Replaces the shipped set: extend it with `{ ...ENVELOPE_UPCASTERS, … }`.
   * Default: {@link ENVELOPE_UPCASTERS}.
   */
  readonly upcasters?: Upcasters;
}

const DECODE_PATCH_RULES: PlainDataRules = {
  code: 'CODEC_BAD_DATA',
  what: 'patch',
  maxDepth: DEFAULT_EVENT_LIMITS.maxDepth,
  binary: 'reject',
};
/** Fields other than a current patch: count keys only; each field's type is checked later. */
const DECODE_ANY_RULES: PlainDataRules = {
  code: 'CODEC_BAD_DATA',
  what: 'envelope',
  maxDepth: DEFAULT_EVENT_LIMITS.maxDepth,
  binary: 'keep',
  finite: false,
};

function bad(message: string, field?: string): TwinlogError {
  return new TwinlogError('CODEC_BAD_DATA', field === undefined ? message : `envelope field "${field}": ${message}`, {
    details: field === undefined ? {} : { field },
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Bring a raw map of envelope version `raw.v` up to {@link ENVELOPE_VERSION}.
 * @throws {TwinlogError} `CODEC_UNSUPPORTED_VERSION` for a future version or a missing step,
 *   `CODEC_BAD_DATA` for a malformed `v` or an upcaster that fails.
 */
function upcast(raw: Record<string, unknown>, upcasters: Upcasters): Record<string, unknown> {
  const v = raw['v'];
  if (v === undefined) throw bad('is missing', 'v');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the value as sent, whatever it is
    throw bad(`must be an integer ≥ 0, got ${String(v)}`, 'v');
  }
  if (v > ENVELOPE_VERSION) {
    throw new TwinlogError(
      'CODEC_UNSUPPORTED_VERSION',
      `envelope version ${v} is newer than this decoder's ${ENVELOPE_VERSION}; upgrade the reader`,
      { details: { version: v, supported: ENVELOPE_VERSION } },
    );
  }
  let out = raw;
  for (let n = v; n < ENVELOPE_VERSION; n++) {
    const step = Object.hasOwn(upcasters, n) ? upcasters[n] : undefined;
    if (typeof step !== 'function') {
      throw new TwinlogError('CODEC_UNSUPPORTED_VERSION', `no upcaster from envelope version ${n} to ${n + 1}`, {
        details: { version: v, from: n, supported: ENVELOPE_VERSION },
      });
    }
    let next: unknown;
    try {
      next = step(out);
    } catch (e) {
      if (isTwinlogError(e)) throw e;
      throw new TwinlogError('CODEC_BAD_DATA', `upcaster from envelope version ${n} failed: ${String(e)}`, {
        cause: e,
        details: { version: v, from: n },
      });
    }
    if (!isRecord(next)) throw bad(`upcaster from envelope version ${n} did not return a map`);
    out = { ...next, v: n + 1 };
  }
  return out;
}

function str(raw: Record<string, unknown>, field: string): string {
  const value = raw[field];
  if (typeof value !== 'string') throw bad(value === undefined ? 'is missing' : 'must be a string', field);
  return value;
}

function decodeCondition(value: unknown): Condition {
  if (!isRecord(value)) throw bad('must be a map', 'cond');
  let ifMatch: string | undefined;
  let ifVersion: number | undefined;
  let idempotencyKey: string | undefined;
  for (const key of Object.keys(value)) {
    const item = value[key];
    if (key === 'ifMatch') {
      if (typeof item !== 'string') throw bad('must be a string', 'cond.ifMatch');
      ifMatch = item;
    } else if (key === 'ifVersion') {
      if (!isSeq(item)) throw bad('must be an integer in [0, 2^53)', 'cond.ifVersion');
      ifVersion = item;
    } else if (key === 'key') {
      if (typeof item !== 'string') throw bad('must be a string', 'cond.key');
      idempotencyKey = item;
    } else {
      throw bad(`has unknown key ${JSON.stringify(key)}`, 'cond');
    }
  }
  return {
    ...(ifMatch === undefined ? {} : { ifMatch }),
    ...(ifVersion === undefined ? {} : { ifVersion }),
    ...(idempotencyKey === undefined ? {} : { key: idempotencyKey }),
  };
}

const ENVELOPE_KEYS: ReadonlySet<string> = new Set(ENVELOPE_FIELDS);

/**
 * `raw`, a map from the general path, once checked to hold envelope fields only (the fast path
 * needs no check: an unknown field makes it give up).
 */
function withEnvelopeKeys(raw: Record<string, unknown>): Record<string, unknown> {
  for (const key in raw) {
    if (!ENVELOPE_KEYS.has(key)) throw bad(`unknown envelope key ${JSON.stringify(key)}`);
  }
  return raw;
}

/** Validate a current-version raw map of envelope fields only and build the event from it. */
function toEvent(
  raw: Record<string, unknown>,
  limits: { readonly maxDepth: number },
  patchChecked: boolean,
): TwinEvent {
  const id = raw['id'];
  if (!Array.isArray(id) || id.length !== 2) throw bad(id === undefined ? 'is missing' : 'must be [writer, seq]', 'id');
  const writer: unknown = id[0];
  const seq: unknown = id[1];
  if (typeof writer !== 'string') throw bad('writer must be a string', 'id');
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) {
    throw bad(`seq must be an unsigned integer, got ${String(seq)}`, 'id');
  }
  // msgpack-javascript reads uint 64 as a rounded number: a value ≥ 2^53 stays ≥ 2^53 when rounded.
  if (seq > MAX_SEQ) throw bad(`seq ${seq} is not below 2^53`, 'id');
  const deviceId = str(raw, 'deviceId');
  const section = str(raw, 'section');
  if (!KINDS.has(section)) throw bad(`unknown section ${JSON.stringify(section)}`, 'section');
  const op = str(raw, 'op');
  if (op !== 'merge' && op !== 'replace') throw bad(`unknown op ${JSON.stringify(op)}`, 'op');
  const patch = raw['patch'];
  if (!isRecord(patch)) throw bad(patch === undefined ? 'is missing' : 'must be a map', 'patch');
  if (!patchChecked) checkPlainData(patch, 2, { ...DECODE_PATCH_RULES, maxDepth: limits.maxDepth });
  const stampBytes = raw['stamp'];
  if (!(stampBytes instanceof Uint8Array))
    throw bad(stampBytes === undefined ? 'is missing' : 'must be bin 8', 'stamp');
  if (stampBytes.length !== 8) throw bad(`must be exactly 8 bytes, got ${stampBytes.length}`, 'stamp');
  const stamp = decodeHlc(stampBytes);
  if (!isValidHlc(stamp)) throw bad('is not a valid HLC', 'stamp');
  const actor = str(raw, 'actor');
  const condRaw = raw['cond'];
  const cond = condRaw === undefined ? undefined : decodeCondition(condRaw);
  const corrRaw = raw['corr'];
  if (corrRaw !== undefined && typeof corrRaw !== 'string') throw bad('must be a string', 'corr');
  const v = ENVELOPE_VERSION;
  const kind = section as EventKind;
  const body = patch as Patch;
  // object literals of fixed shapes, not spreads: a spread builds the object at run time, several
  // times larger, and this runs for every record a replay reads (docs/write-path.md, "Decoding")
  if (cond === undefined) {
    return corrRaw === undefined
      ? { v, id: { writer, seq }, deviceId, section: kind, op, patch: body, stamp, actor }
      : { v, id: { writer, seq }, deviceId, section: kind, op, patch: body, stamp, actor, corr: corrRaw };
  }
  return corrRaw === undefined
    ? { v, id: { writer, seq }, deviceId, section: kind, op, patch: body, stamp, cond, actor }
    : { v, id: { writer, seq }, deviceId, section: kind, op, patch: body, stamp, cond, actor, corr: corrRaw };
}

/**
 * Decode one event envelope (layout in the comment above {@link encodeEvent}) from untrusted bytes:
 * a Kafka record value, a file, a network frame. Use {@link safeDecodeEvent} where a bad record is
 * routine (e.g. to route it to the dead-letter topic) rather than exceptional.
 *
 * An ordinary envelope (ASCII strings, no 64-bit integers or 32-bit headers, within the default
 * limits) is decoded in one pass that builds the same value and checks the same rules
 * (`internal/fastEnvelope.ts`, docs/write-path.md, "Replay"); anything else, and every error, takes
 * the general path described next, so what is returned or thrown does not depend on the path.
 *
 * The bytes are treated as hostile. Before msgpack-javascript allocates anything, a pre-scan checks
 * the size, depth and every declared length against the limits (defaults in
 * {@link DEFAULT_EVENT_LIMITS}) and that the input holds exactly one value. Then: map keys must be
 * strings and never `__proto__`, `constructor` or `prototype`, anywhere; a key may not repeat in a
 * map; the envelope must have exactly the fields of the layout with the right types; `patch` must
 * hold JSON values only; `seq` must be below 2^53. Records of an older envelope version are
 * upcast with `options.upcasters` (default {@link ENVELOPE_UPCASTERS}); the result always has
 * `v === ENVELOPE_VERSION`. Decoded maps are plain `{}` objects.
 *
 * Not checked here: IoT Hub patch rules (key characters, value sizes, depth 10), which are core's
 * `validatePatch`'s job. Strings are decoded leniently, as msgpack-javascript does: invalid UTF-8
 * does not fail but yields replacement or raw code units.
 *
 * @example
 * const event = decodeEvent(record.value)                  // default limits
 * const small = decodeEvent(bytes, { maxBytes: 16 * 1024 }) // tighter for device input
 *
 * @throws {TwinlogError} `CODEC_TRUNCATED` when the input ends early (a valid prefix of a longer
 *   value, or empty); `CODEC_BAD_DATA` for anything malformed (not msgpack, wrong or missing fields,
 *   unknown keys, section or op, a stamp that is not bin 8, `seq` ≥ 2^53, duplicate keys, ext types,
 *   trailing bytes, a failing upcaster); `CODEC_LIMIT_EXCEEDED` when a limit is breached;
 *   `CODEC_FORBIDDEN_KEY` for a `__proto__`/`constructor`/`prototype` key;
 *   `CODEC_UNSUPPORTED_VERSION` for an envelope newer than {@link ENVELOPE_VERSION} or one no
 *   upcaster reaches. Nothing else escapes, except a `RangeError` for malformed `options` (a bug).
 */
export function decodeEvent(bytes: Uint8Array, options?: DecodeOptions): TwinEvent {
  if (options === undefined && bytes instanceof Uint8Array) {
    // the one-pass path for the ordinary envelope; anything else takes the general path below
    const raw = fastEnvelope(bytes, DEFAULT_EVENT_LIMITS);
    if (raw !== undefined && raw['v'] === ENVELOPE_VERSION) return toEvent(raw, DEFAULT_EVENT_LIMITS, true);
  }
  const limits = resolveLimits(options, DEFAULT_EVENT_LIMITS);
  const { value, mapEntries } = decodeMsgpack(bytes, limits);
  if (!isRecord(value)) throw bad('the envelope must be a msgpack map');
  const raw = value;
  const current = raw['v'] === ENVELOPE_VERSION;
  const sameDepth = limits.maxDepth === DEFAULT_EVENT_LIMITS.maxDepth;
  const patchRules = sameDepth ? DECODE_PATCH_RULES : { ...DECODE_PATCH_RULES, maxDepth: limits.maxDepth };
  const anyRules = sameDepth ? DECODE_ANY_RULES : { ...DECODE_ANY_RULES, maxDepth: limits.maxDepth };
  // One walk: type-check the patch (current version only: old shapes may differ) and count map keys.
  let keys = 0;
  for (const key of Object.keys(raw)) {
    keys += 1;
    const item = raw[key];
    if (typeof item === 'object' && item !== null) {
      keys += key === 'patch' && current ? checkPlainData(item, 2, patchRules) : checkPlainData(item, 2, anyRules);
    }
  }
  if (keys !== mapEntries) throw bad('a map repeats a key');
  if (current) return toEvent(withEnvelopeKeys(raw), limits, true);
  return toEvent(withEnvelopeKeys(upcast(raw, options?.upcasters ?? ENVELOPE_UPCASTERS)), limits, false);
}

/**
 * The non-throwing form of {@link decodeEvent}: the same checks, with a `CODEC_*` error returned as a
 * value. Use it where bad records are expected and routed (dead-letter topic, rejection feed).
 *
 * @example
 * const r = safeDecodeEvent(record.value)
 * if (r.ok) apply(r.value)
 * else deadLetter(record, r.error.code, r.error.message)
 *
 * @throws {RangeError} only for malformed `options` (a caller bug); every decoding failure is returned.
 */
export function safeDecodeEvent(bytes: Uint8Array, options?: DecodeOptions): Result<TwinEvent> {
  try {
    return { ok: true, value: decodeEvent(bytes, options) };
  } catch (e) {
    if (isTwinlogError(e)) return { ok: false, error: e };
    throw e;
  }
}
