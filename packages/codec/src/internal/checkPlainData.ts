/**
 * One recursive walk over plain data (JSON values, plus `Uint8Array` where allowed), shared by the
 * encoders (to refuse what the decoders would refuse, at write time) and the decoders (to check
 * types after msgpack decoding, and to count map keys for duplicate-key detection).
 *
 * Recursion is bounded by `maxDepth`: the walk throws at the first container past the limit and
 * never descends further. Decoded input has already passed the framing pre-scan, so it cannot be
 * deeper than that limit anyway.
 */
import { TwinlogError, type TwinlogErrorCode } from '@twinlog/core';
import { FORBIDDEN_KEYS } from './decodeMsgpack.ts';

export interface PlainDataRules {
  /** Code for a value of the wrong type (non-finite number, `undefined`, class instance …). */
  readonly code: TwinlogErrorCode;
  /** What is being walked, for messages: `"patch"`, `"snapshot"`. */
  readonly what: string;
  /** Deepest container allowed (the root container of the walk has the `depth` passed in). */
  readonly maxDepth: number;
  /**
   * `Uint8Array` leaves: refused, kept as they are, or replaced by a plain copy (msgpack decodes
   * binary as a view into the input buffer, which the caller may reuse).
   */
  readonly binary: 'reject' | 'keep' | 'copy';
  /** Refuse NaN and ±Infinity (default true); false leaves numbers to a later, field-specific check. */
  readonly finite?: boolean;
}

function fail(rules: PlainDataRules, path: readonly (string | number)[], message: string): never {
  throw new TwinlogError(rules.code, `${rules.what}: ${message}`, { path: path.map(String) });
}

function kindOf(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'object' || v === null) return typeof v;
  return Object.prototype.toString.call(v).slice(8, -1);
}

/** True for an object whose prototype is `null` or some realm's `Object.prototype`. */
function isPlainRecord(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/**
 * Check that `value` (at container depth `depth`) is plain data under `rules`; returns the number
 * of map keys seen, the root's included.
 * @throws {TwinlogError} `rules.code` for a wrong type, `CODEC_FORBIDDEN_KEY`, `CODEC_LIMIT_EXCEEDED` for depth.
 */
export function checkPlainData(value: unknown, depth: number, rules: PlainDataRules): number {
  const path: (string | number)[] = [];
  return walk(value, depth, rules, path);
}

function walk(v: unknown, depth: number, rules: PlainDataRules, path: (string | number)[]): number {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return 0;
    case 'number':
      if (rules.finite !== false && !Number.isFinite(v)) fail(rules, path, `non-finite number ${v}`);
      return 0;
    case 'object':
      break;
    default:
      return fail(rules, path, `value of type ${kindOf(v)} is not plain data`);
  }
  if (v === null) return 0;
  if (v instanceof Uint8Array) {
    if (rules.binary === 'reject') fail(rules, path, 'binary value is not allowed');
    return 0;
  }
  if (depth > rules.maxDepth) {
    throw new TwinlogError('CODEC_LIMIT_EXCEEDED', `${rules.what}: nesting depth exceeds maxDepth ${rules.maxDepth}`, {
      path: path.map(String),
      details: { limit: 'maxDepth', max: rules.maxDepth },
    });
  }
  let keys = 0;
  if (Array.isArray(v)) {
    const arr: unknown[] = v;
    for (let i = 0; i < arr.length; i++) {
      const item = arr[i];
      if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
      path.push(i);
      if (rules.binary === 'copy' && item instanceof Uint8Array) arr[i] = new Uint8Array(item);
      else keys += walk(item, depth + 1, rules, path);
      path.pop();
    }
    return keys;
  }
  if (!isPlainRecord(v)) fail(rules, path, `value of type ${kindOf(v)} is not plain data`);
  const rec = v as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    keys += 1;
    if (FORBIDDEN_KEYS.has(k)) {
      throw new TwinlogError('CODEC_FORBIDDEN_KEY', `${rules.what}: forbidden map key ${JSON.stringify(k)}`, {
        path: path.map(String),
        details: { key: k },
      });
    }
    const item = rec[k];
    if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
    path.push(k);
    if (rules.binary === 'copy' && item instanceof Uint8Array) rec[k] = new Uint8Array(item);
    else keys += walk(item, depth + 1, rules, path);
    path.pop();
  }
  return keys;
}
