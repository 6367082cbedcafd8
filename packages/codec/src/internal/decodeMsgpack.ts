/**
 * The one place that calls msgpack-javascript's decoder: limits are resolved, the framing is
 * pre-scanned ({@link scanMsgpack}), and whatever the library throws is turned into a
 * `TwinlogError` with a `CODEC_*` code. Decoders are cached per set of limits, so a call allocates
 * no `Decoder`.
 */
import { DecodeError, Decoder } from '@msgpack/msgpack';
import { TwinlogError, isTwinlogError } from '@twinlog/core';
import type { DecodeLimits, ResolvedDecodeLimits } from '../decodeLimits.ts';
import { NO_EXTENSIONS } from './noExtensions.ts';
import { scanMsgpack } from './scanMsgpack.ts';

/** Keys that could reach an object's prototype machinery; refused anywhere in decoded data. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export function forbiddenKey(key: string, path?: readonly string[]): TwinlogError {
  return new TwinlogError('CODEC_FORBIDDEN_KEY', `forbidden map key ${JSON.stringify(key)}`, {
    ...(path === undefined ? {} : { path }),
    details: { key },
  });
}

/** Map keys must be strings, and never one of {@link FORBIDDEN_KEYS}. */
function mapKeyConverter(key: unknown): string {
  if (typeof key !== 'string') {
    throw new TwinlogError('CODEC_BAD_DATA', `map key of type ${typeof key} (keys must be strings)`);
  }
  if (FORBIDDEN_KEYS.has(key)) throw forbiddenKey(key);
  return key;
}

const UINT32_MAX = 0xffff_ffff;

function resolveLimit(name: keyof DecodeLimits, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity || (Number.isSafeInteger(value) && value >= 0)) return value;
  throw new RangeError(`decode option ${name} must be an integer ≥ 0 or Infinity, got ${String(value)}`);
}

/**
 * Fill omitted limits from `defaults`.
 * @throws {RangeError} for a limit that is not an integer ≥ 0 or `Infinity` (a caller bug).
 */
export function resolveLimits(options: DecodeLimits | undefined, defaults: ResolvedDecodeLimits): ResolvedDecodeLimits {
  if (options === undefined) return defaults;
  return {
    maxBytes: resolveLimit('maxBytes', options.maxBytes, defaults.maxBytes),
    maxDepth: resolveLimit('maxDepth', options.maxDepth, defaults.maxDepth),
    maxStrLength: resolveLimit('maxStrLength', options.maxStrLength, defaults.maxStrLength),
    maxBinLength: resolveLimit('maxBinLength', options.maxBinLength, defaults.maxBinLength),
    maxArrayLength: resolveLimit('maxArrayLength', options.maxArrayLength, defaults.maxArrayLength),
    maxMapLength: resolveLimit('maxMapLength', options.maxMapLength, defaults.maxMapLength),
  };
}

const decoders = new Map<string, Decoder>();
const MAX_CACHED_DECODERS = 16;

function decoderFor(limits: ResolvedDecodeLimits): Decoder {
  const key = `${limits.maxStrLength}/${limits.maxBinLength}/${limits.maxArrayLength}/${limits.maxMapLength}`;
  let decoder = decoders.get(key);
  if (decoder === undefined) {
    if (decoders.size >= MAX_CACHED_DECODERS) decoders.clear();
    decoder = new Decoder({
      extensionCodec: NO_EXTENSIONS,
      mapKeyConverter,
      maxStrLength: Math.min(limits.maxStrLength, UINT32_MAX),
      maxBinLength: Math.min(limits.maxBinLength, UINT32_MAX),
      maxArrayLength: Math.min(limits.maxArrayLength, UINT32_MAX),
      maxMapLength: Math.min(limits.maxMapLength, UINT32_MAX),
      maxExtLength: 0,
    });
    decoders.set(key, decoder);
  }
  return decoder;
}

/** Map anything msgpack-javascript throws to a `TwinlogError`. */
function classify(e: unknown): TwinlogError {
  if (isTwinlogError(e)) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof DecodeError) {
    if (message.includes('__proto__')) return forbiddenKey('__proto__');
    if (message.startsWith('Max length exceeded')) {
      return new TwinlogError('CODEC_LIMIT_EXCEEDED', message, { cause: e });
    }
    return new TwinlogError('CODEC_BAD_DATA', message, { cause: e });
  }
  if (e instanceof RangeError) {
    // "Extra N of M byte(s) found …" is trailing data; every other RangeError is a read past the end.
    if (message.startsWith('Extra ')) return new TwinlogError('CODEC_BAD_DATA', message, { cause: e });
    return new TwinlogError('CODEC_TRUNCATED', message, { cause: e });
  }
  return new TwinlogError('CODEC_BAD_DATA', `msgpack decoding failed: ${message}`, { cause: e });
}

/** The result of {@link decodeMsgpack}: the value and how many map entries the bytes declared. */
export interface DecodedMsgpack {
  readonly value: unknown;
  readonly mapEntries: number;
}

/**
 * Decode exactly one msgpack value from untrusted `bytes` within `limits`.
 * @throws {TwinlogError} a `CODEC_*` code, and nothing else.
 */
export function decodeMsgpack(bytes: Uint8Array, limits: ResolvedDecodeLimits): DecodedMsgpack {
  if (!(bytes instanceof Uint8Array)) {
    throw new TwinlogError('CODEC_BAD_DATA', `expected a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  }
  const mapEntries = scanMsgpack(bytes, limits);
  let value: unknown;
  try {
    value = decoderFor(limits).decode(bytes);
  } catch (e) {
    throw classify(e);
  }
  return { value, mapEntries };
}
