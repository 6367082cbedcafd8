/**
 * Deterministic msgpack for plain data (twin snapshots, fold state): {@link encodeSnapshot} writes
 * equal values as identical bytes, {@link decodeSnapshot} reads them back from untrusted bytes.
 */
import { Encoder } from '@msgpack/msgpack';
import { TwinlogError, isTwinlogError } from '@twinlog/core';
import { DEFAULT_SNAPSHOT_LIMITS, type DecodeLimits } from './decodeLimits.ts';
import { checkPlainData, type PlainDataRules } from './internal/checkPlainData.ts';
import { decodeMsgpack, resolveLimits } from './internal/decodeMsgpack.ts';
import { NO_EXTENSIONS } from './internal/noExtensions.ts';
import { SortedEncoder } from './internal/sortedEncoder.ts';

/*
 * ── Snapshot wire contract ────────────────────────────────────────────────────────────────────────
 *
 * Plain msgpack, one value, no extension types. Deterministic, not minimal:
 *   - map keys are sorted by UTF-16 code units (Array.prototype.sort, as canonicalJson in core);
 *   - every integer that is a safe integer takes the smallest msgpack int form, -0 included (as 0);
 *     every other number is float 64 (never float 32);
 *   - strings take the smallest str form, Uint8Array the smallest bin form;
 *   - there is no `undefined`, NaN or ±Infinity (encodeSnapshot refuses them).
 * So equal values (key order aside) always give equal bytes, and bytes can be compared or hashed.
 */

const encoder = new Encoder({ extensionCodec: NO_EXTENSIONS, sortKeys: true });
/**
 * For records twinlog builds itself (see `encodeOutputRecord`): `undefined` members are left out.
 * The same bytes as `new Encoder({ sortKeys: true, ignoreUndefined: true })`, written faster.
 */
const trustedEncoder = new SortedEncoder();

/**
 * Encode a value twinlog built itself from already-validated data (output records of the
 * projector and reconciler) without the input walk of {@link encodeSnapshot}: same sorted-key
 * bytes, `undefined` members omitted. Not for untrusted values.
 */
export function encodeTrustedSnapshot(value: unknown): Uint8Array {
  return trustedEncoder.encode(value);
}

const ENCODE_RULES: PlainDataRules = {
  code: 'VALUE_TYPE_INVALID',
  what: 'snapshot',
  maxDepth: DEFAULT_SNAPSHOT_LIMITS.maxDepth,
  binary: 'keep',
};
const DECODE_RULES: PlainDataRules = {
  code: 'CODEC_BAD_DATA',
  what: 'snapshot',
  maxDepth: DEFAULT_SNAPSHOT_LIMITS.maxDepth,
  binary: 'copy',
};

/**
 * Encode plain data as deterministic msgpack: maps with sorted keys, so values that are equal apart
 * from key insertion order give byte-identical output. Use it wherever bytes are compared, hashed
 * or replayed against golden fixtures (twin snapshots, the projector's state); use
 * {@link encodeEvent} for events.
 *
 * Accepts `null`, booleans, strings, finite numbers, `Uint8Array`, arrays and plain objects
 * (prototype `Object.prototype` or `null`), nested at most {@link DEFAULT_SNAPSHOT_LIMITS}`.maxDepth`
 * deep, so that {@link decodeSnapshot} with default limits reads back whatever this writes (size
 * aside: raise `maxBytes` for snapshots above 16 MiB).
 *
 * Gotchas: `-0` comes back as `0`; a `Uint8Array` subclass (e.g. a Node `Buffer`) comes back as a
 * plain `Uint8Array`; symbol keys are ignored, as by `Object.keys`.
 *
 * @example
 * const a = encodeSnapshot({ b: 1, a: [true, null] })
 * const b = encodeSnapshot({ a: [true, null], b: 1 })
 * // a and b are the same bytes; decodeSnapshot(a) deep-equals { a: [true, null], b: 1 }
 *
 * @throws {TwinlogError} `VALUE_TYPE_INVALID` for anything else (`undefined`, NaN, ±Infinity,
 *   bigint, functions, `Date`, `Map`, class instances, sparse-array holes; `path` names the spot);
 *   `CODEC_FORBIDDEN_KEY` for a `__proto__`, `constructor` or `prototype` key;
 *   `CODEC_LIMIT_EXCEEDED` when nested too deep.
 */
export function encodeSnapshot(value: unknown): Uint8Array {
  checkPlainData(value, 1, ENCODE_RULES);
  try {
    return encoder.encode(value);
  } catch (e) {
    if (isTwinlogError(e)) throw e;
    throw new TwinlogError(
      'VALUE_TYPE_INVALID',
      `cannot encode snapshot: ${e instanceof Error ? e.message : String(e)}`,
      {
        cause: e,
      },
    );
  }
}

/** Options of {@link decodeSnapshot}: limits, defaults in {@link DEFAULT_SNAPSHOT_LIMITS}. */
export type DecodeSnapshotOptions = DecodeLimits;

/**
 * Decode a value written by {@link encodeSnapshot} from untrusted bytes (a compacted topic, a
 * SQLite row, a fixture file), with the same hostile-input guarantees as {@link decodeEvent}: size,
 * depth and length limits checked before allocation (defaults in {@link DEFAULT_SNAPSHOT_LIMITS}),
 * string map keys only, no `__proto__`/`constructor`/`prototype` keys, no repeated keys, no
 * extension types, no NaN or ±Infinity, nothing after the value.
 *
 * Maps decode as plain `{}` objects, binary as fresh `Uint8Array` copies (never views into
 * `bytes`, so reusing the input buffer is safe). The decoder does not require sorted keys: it
 * accepts any plain msgpack of this shape.
 *
 * @example
 * const state = decodeSnapshot(row.bytes)
 * const big = decodeSnapshot(bytes, { maxBytes: 64 * 1024 * 1024 })
 *
 * @throws {TwinlogError} `CODEC_TRUNCATED` when the input ends early; `CODEC_BAD_DATA` when it is
 *   malformed; `CODEC_LIMIT_EXCEEDED` when a limit is breached; `CODEC_FORBIDDEN_KEY` for a
 *   forbidden key. Nothing else escapes, except a `RangeError` for malformed `options` (a bug).
 */
export function decodeSnapshot(bytes: Uint8Array, options?: DecodeSnapshotOptions): unknown {
  const limits = resolveLimits(options, DEFAULT_SNAPSHOT_LIMITS);
  const { value, mapEntries } = decodeMsgpack(bytes, limits);
  if (value instanceof Uint8Array) return new Uint8Array(value);
  const rules =
    limits.maxDepth === DECODE_RULES.maxDepth ? DECODE_RULES : { ...DECODE_RULES, maxDepth: limits.maxDepth };
  const keys = checkPlainData(value, 1, rules);
  if (keys !== mapEntries) {
    throw new TwinlogError('CODEC_BAD_DATA', 'snapshot: a map repeats a key');
  }
  return value;
}
