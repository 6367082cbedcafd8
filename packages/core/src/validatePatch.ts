/**
 * Validation of untrusted merge patches against IoT Hub's twin limits (docs/iot-hub.md, "Limits"), and the
 * IoT Hub way of measuring a section's size (docs/iot-hub.md "Limits").
 *
 * Every write is validated whole before anything is applied (docs/iot-hub.md "Writes"): one bad key fails the entire
 * patch. {@link validatePatch} returns the first error as a value; {@link assertValidPatch} throws it.
 *
 * The walk is iterative and never descends past the depth limit, so hostile inputs (100 000 levels
 * deep, megabyte keys) cost at most one linear pass and cannot overflow the stack.
 */
import { TwinlogError, type Result, type TwinlogErrorCode } from './errors.ts';
import type { Section } from './event.ts';
import type { Json, JsonObject, Patch } from './json.ts';

/** The limits a twin write must respect. Defaults are IoT Hub's, in {@link TWIN_LIMITS}. */
export interface TwinLimits {
  /** Longest key, in UTF-8 bytes (IoT Hub: 1 KB). */
  readonly maxKeyBytes: number;
  /** Longest string value, in UTF-8 bytes, control characters included (IoT Hub: 4 KB). */
  readonly maxStringBytes: number;
  /** Deepest container below the section root; objects and arrays each count one level (IoT Hub: 10). */
  readonly maxDepth: number;
  /** Smallest integer allowed (IoT Hub: −2^52). Non-integer numbers are only required to be finite. */
  readonly minInteger: number;
  /** Largest integer allowed (IoT Hub: 2^52 − 1). */
  readonly maxInteger: number;
  /** Largest `tags` section, as counted by {@link sectionSize} (IoT Hub: 8 KB). */
  readonly maxTagsBytes: number;
  /** Largest `properties.desired` section (IoT Hub: 32 KB). */
  readonly maxDesiredBytes: number;
  /** Largest `properties.reported` section (IoT Hub: 32 KB). */
  readonly maxReportedBytes: number;
}

/**
 * IoT Hub's documented twin limits (docs/iot-hub.md, "Limits"), the defaults of every function here.
 *
 * | limit | value |
 * |---|---|
 * | `maxKeyBytes` | 1024 |
 * | `maxStringBytes` | 4096 |
 * | `maxDepth` | 10 |
 * | `minInteger` / `maxInteger` | −4503599627370496 / 4503599627370495 (±2^52) |
 * | `maxTagsBytes` | 8192 |
 * | `maxDesiredBytes` / `maxReportedBytes` | 32768 |
 *
 * Override single limits by passing a `Partial<TwinLimits>`; the object itself is frozen.
 *
 * @example
 * validatePatch('tags', patch, { maxTagsBytes: TWIN_LIMITS.maxTagsBytes * 2 })
 */
export const TWIN_LIMITS: TwinLimits = Object.freeze({
  maxKeyBytes: 1024,
  maxStringBytes: 4096,
  maxDepth: 10,
  minInteger: -4503599627370496,
  maxInteger: 4503599627370495,
  maxTagsBytes: 8192,
  maxDesiredBytes: 32768,
  maxReportedBytes: 32768,
});

/**
 * The size limit of `section` under `limits` (defaults: tags 8192, desired and reported 32768).
 *
 * @example
 * sectionLimit('desired') // 32768
 */
export function sectionLimit(section: Section, limits: Partial<TwinLimits> = {}): number {
  const l = resolveLimits(limits);
  return section === 'tags' ? l.maxTagsBytes : section === 'desired' ? l.maxDesiredBytes : l.maxReportedBytes;
}

/**
 * Length of `s` once encoded as UTF-8, computed without `TextEncoder` (pure ECMAScript).
 *
 * Counts code points: U+0000–U+007F take 1 byte, up to U+07FF 2, the rest of the BMP 3, and a
 * surrogate pair (U+10000 and above) 4. A lone surrogate counts 3, as `TextEncoder` writes it as
 * U+FFFD. Equals `new TextEncoder().encode(s).length` for every string.
 *
 * @example
 * utf8ByteLength('aé€😀') // 1 + 2 + 3 + 4 = 10
 */
export function utf8ByteLength(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Like {@link utf8ByteLength} but skipping C0 (U+0000–U+001F, U+007F) and C1 (U+0080–U+009F)
 * control characters: how IoT Hub counts keys and strings toward a section's size (docs/iot-hub.md "Limits").
 *
 * @example
 * twinByteLength('a\u0000\u0085b') // 2
 */
export function twinByteLength(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) continue;
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Size of a section (or of any JSON value) counted the IoT Hub way (docs/iot-hub.md, "Limits").
 *
 * The sum over every property of len(key) + len(value), where keys and strings count their UTF-8
 * bytes excluding C0/C1 control characters, numbers count 8 and booleans 4, objects the sum of their
 * members and arrays the sum of their elements (objects inside by the same rule).
 *
 * Gotchas: keys starting with `$` (`$metadata`, `$version`) are skipped with their values, so a
 * section can be measured as `GET /twins` returns it. `null` members (deletes, in a patch) count
 * nothing, not even their key. Values that are not JSON count 0. The walk is iterative, so depth
 * cannot overflow the stack.
 *
 * @example
 * sectionSize({ a: 'xy', n: 1, b: true, $version: 3 }) // (1+2) + (1+8) + (1+4) = 17
 */
export function sectionSize(json: Json | Patch | null): number {
  let total = 0;
  const stack: unknown[] = [json];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += twinByteLength(v);
    else if (typeof v === 'number') total += 8;
    else if (typeof v === 'boolean') total += 4;
    else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    } else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (k.startsWith('$')) continue;
        const m = o[k];
        if (m === null || m === undefined) continue;
        total += twinByteLength(k);
        stack.push(m);
      }
    }
  }
  return total;
}

/**
 * Refuse a write that would grow a section past its limit (docs/iot-hub.md, "Limits": only growth
 * is refused).
 *
 * Use after computing the section a write would produce: throws only when `after` is above the
 * limit **and** larger than `before`, so a shrinking (or size-neutral) write to a section that is
 * already oversized (e.g. after the limit was lowered) still passes. Sizes are {@link sectionSize}s.
 *
 * @example
 * assertSectionFits('tags', current, next) // throws when next > 8192 bytes and next > current
 * @throws {TwinlogError} `SECTION_TOO_LARGE` with `path: []` and details `{ section, limit, actual, before }`.
 */
export function assertSectionFits(
  section: Section,
  before: JsonObject,
  after: JsonObject,
  limits: Partial<TwinLimits> = {},
): void {
  const limit = sectionLimit(section, limits);
  const actual = sectionSize(after);
  if (actual <= limit) return;
  const previous = sectionSize(before);
  if (actual <= previous) return;
  throw new TwinlogError(
    'SECTION_TOO_LARGE',
    `The ${section} section would grow to ${actual} bytes, above its maximum of ${limit} bytes`,
    { path: [], details: { section, limit, actual, before: previous } },
  );
}

/**
 * Validate an untrusted RFC 7396 merge patch for one section, without throwing.
 *
 * Checks, against `limits` (default {@link TWIN_LIMITS}):
 * - the patch is a plain object (`PATCH_NOT_OBJECT`);
 * - every key is non-empty, has no `$`, `.`, space, C0 or C1 control character and is not
 *   `__proto__`, `constructor` or `prototype` (`KEY_INVALID`), and is at most 1024 UTF-8 bytes
 *   (`KEY_TOO_LONG`);
 * - containers are at most 10 levels below the root, objects and arrays each counting one
 *   (`DEPTH_EXCEEDED`): `{one:{…{ten:{leaf:1}}}}` passes, one more object level fails;
 * - strings are at most 4096 UTF-8 bytes (`STRING_TOO_LONG`); numbers are finite and integers lie in
 *   ±2^52 (`NUMBER_OUT_OF_RANGE`);
 * - `null` appears only as an object member outside arrays, where it means delete (`NULL_IN_ARRAY`);
 * - values are strings, numbers, booleans, `null`, arrays or plain objects (`VALUE_TYPE_INVALID`:
 *   `undefined`, array holes, bigint, functions, `Date`, `Uint8Array`, class instances …);
 * - the patch's own {@link sectionSize} is within the section's limit (`SECTION_TOO_LARGE`).
 *
 * The first error in a depth-first walk (keys in `Object.keys` order; a key before its value) wins;
 * the size is checked after the whole structure. Errors carry `path` (keys from the section root,
 * array indices as strings) and `details` (`limit` and `actual` where they apply).
 *
 * Gotchas: on success `value` is the input object itself (typed as {@link Patch}), not a copy. The
 * walk stops at the depth limit, so `details.actual` of `DEPTH_EXCEEDED` is the first depth past the
 * limit, not the full depth. A `null`-prototype object counts as plain. Whether the patch would
 * grow the *stored* section past its limit is a separate check: {@link assertSectionFits}.
 *
 * @example
 * const r = validatePatch('desired', JSON.parse(body))
 * if (!r.ok) return reply400(r.error.code, r.error.path)
 * apply(r.value)
 */
export function validatePatch(section: Section, patch: unknown, limits: Partial<TwinLimits> = {}): Result<Patch> {
  const resolved = resolveLimits(limits);
  if (fastValid(section, patch, resolved)) return { ok: true, value: patch as Patch };
  const error = findError(section, patch, resolved);
  return error === undefined ? { ok: true, value: patch as Patch } : { ok: false, error };
}

/**
 * Throwing form of {@link validatePatch}: same checks, same first error.
 *
 * Use on paths where an invalid patch is a bug or where the caller maps exceptions in one place
 * (the gateway's error middleware); use {@link validatePatch} where callers branch.
 *
 * @example
 * assertValidPatch('reported', { battery: 60, fw: null }) // passes; patch is now typed as Patch
 * @throws {TwinlogError} `PATCH_NOT_OBJECT`, `KEY_INVALID`, `KEY_TOO_LONG`, `DEPTH_EXCEEDED`,
 * `STRING_TOO_LONG`, `NUMBER_OUT_OF_RANGE`, `NULL_IN_ARRAY`, `VALUE_TYPE_INVALID` or
 * `SECTION_TOO_LARGE`, with `path` and `details`.
 */
export function assertValidPatch(
  section: Section,
  patch: unknown,
  limits: Partial<TwinLimits> = {},
): asserts patch is Patch {
  const resolved = resolveLimits(limits);
  if (fastValid(section, patch, resolved)) return;
  const error = findError(section, patch, resolved);
  if (error !== undefined) throw error;
}

// ---------------------------------------------------------------------------------------------------

function resolveLimits(limits: Partial<TwinLimits>): TwinLimits {
  if (limits === TWIN_LIMITS) return TWIN_LIMITS;
  const out: { -readonly [K in keyof TwinLimits]: number } = { ...TWIN_LIMITS };
  for (const k of Object.keys(out) as (keyof TwinLimits)[]) {
    const v = limits[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** A plain object: prototype `null` or some realm's `Object.prototype` (so `Date`, class instances fail). */
function isPlain(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v !== 'object') return typeof v;
  try {
    return Object.prototype.toString.call(v).slice(8, -1);
  } catch {
    return 'object';
  }
}

/** The path, JSON-escaped, long keys shortened, without `;` (IoT Hub's message separator, docs/iot-hub.md "Errors"). */
function describePath(path: readonly string[]): string {
  const shown = path.length > 12 ? [...path.slice(0, 5), '…', ...path.slice(-5)] : path;
  const text = JSON.stringify(shown.map((k) => (k.length > 64 ? k.slice(0, 64) + '…' : k)));
  return text.replaceAll(';', '\\u003b');
}

function fail(
  code: TwinlogErrorCode,
  what: string,
  path: readonly string[],
  details: Readonly<Record<string, unknown>>,
): TwinlogError {
  return new TwinlogError(code, `${what} at ${describePath(path)}`, { path: [...path], details });
}

function codePointLabel(c: number): string {
  return 'U+' + c.toString(16).toUpperCase().padStart(4, '0');
}

/** The key's error, or its UTF-8 length when valid. */
function checkKey(key: string, path: readonly string[], limits: TwinLimits): TwinlogError | number {
  if (key.length === 0) return fail('KEY_INVALID', 'Property name is empty', path, { reason: 'empty' });
  if (RESERVED_KEYS.has(key)) {
    return fail('KEY_INVALID', 'Property name is reserved', path, { reason: 'reserved', actual: key });
  }
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c === 0x20 || c === 0x24 || c === 0x2e || (c >= 0x7f && c <= 0x9f)) {
      return fail('KEY_INVALID', `Property name contains the forbidden character ${codePointLabel(c)}`, path, {
        reason: 'character',
        actual: codePointLabel(c),
        index: i,
      });
    }
  }
  const bytes = utf8ByteLength(key);
  if (bytes > limits.maxKeyBytes) {
    return fail('KEY_TOO_LONG', `Property name should be maximum ${limits.maxKeyBytes} bytes`, path, {
      limit: limits.maxKeyBytes,
      actual: bytes,
    });
  }
  return bytes;
}

/**
 * The fast path: a recursive walk that accepts only what is plainly valid (ASCII keys, no nulls in
 * arrays, …) and computes the patch's size on the way. Anything it is unsure of (an error, or a
 * non-ASCII key) returns false, and the explaining walk ({@link findError}) decides. It never
 * recurses past the depth limit, so hostile depth cannot overflow the stack.
 */
const FAST_PATH_MAX_DEPTH = 64;

function fastValid(section: Section, patch: unknown, limits: TwinLimits): boolean {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch) || !isPlain(patch)) return false;
  if (limits.maxDepth > FAST_PATH_MAX_DEPTH) return false; // recursion is bounded by the depth limit
  const size = fastSize(patch as Record<string, unknown>, 0, false, limits);
  return size >= 0 && size <= sectionLimit(section, limits);
}

function fastSize(node: Record<string, unknown>, depth: number, inArray: boolean, limits: TwinLimits): number {
  let size = 0;
  // for-in, not Object.keys: no array per object; an inherited key leaves the fast path
  for (const key in node) {
    if (!Object.hasOwn(node, key)) return -1;
    const n = key.length;
    if (n === 0 || n > limits.maxKeyBytes || RESERVED_KEYS.has(key)) return -1;
    for (let j = 0; j < n; j++) {
      const c = key.charCodeAt(j);
      if (c <= 0x20 || c === 0x24 || c === 0x2e || c >= 0x7f) return -1;
    }
    const value = node[key];
    if (value === null) {
      if (inArray) return -1;
      continue;
    }
    const v = fastValue(value, depth, inArray, limits);
    if (v < 0) return -1;
    size += n + v;
  }
  return size;
}

/** Size of one value (not counting its key), or -1 when the fast path declines. */
function fastValue(value: unknown, depth: number, inArray: boolean, limits: TwinLimits): number {
  switch (typeof value) {
    case 'string':
      if (value.length * 3 > limits.maxStringBytes && utf8ByteLength(value) > limits.maxStringBytes) return -1;
      return twinByteLength(value);
    case 'number':
      if (!Number.isFinite(value)) return -1;
      if (Number.isInteger(value) && (value < limits.minInteger || value > limits.maxInteger)) return -1;
      return 8;
    case 'boolean':
      return 4;
    case 'object': {
      if (value === null || depth + 1 > limits.maxDepth) return -1;
      if (Array.isArray(value)) {
        let size = 0;
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || value[i] === null) return -1;
          const v = fastValue(value[i], depth + 1, true, limits);
          if (v < 0) return -1;
          size += v;
        }
        return size;
      }
      if (!isPlain(value)) return -1;
      return fastSize(value as Record<string, unknown>, depth + 1, inArray, limits);
    }
    default:
      return -1;
  }
}

/** One open container of the depth-first walk. */
interface Frame {
  readonly node: Readonly<Record<string, unknown>> | readonly unknown[];
  /** Member names for an object; `undefined` for an array. */
  readonly keys: readonly string[] | undefined;
  readonly length: number;
  next: number;
  /** Depth of this container: the patch root is 0. */
  readonly depth: number;
  /** This container is an array or lies inside one (then `null` is forbidden). */
  readonly inArray: boolean;
}

function openFrame(node: object, depth: number, parentInArray: boolean): Frame {
  if (Array.isArray(node)) {
    return { node: node as unknown[], keys: undefined, length: node.length, next: 0, depth, inArray: true };
  }
  const keys = Object.keys(node);
  return {
    node: node as Record<string, unknown>,
    keys,
    length: keys.length,
    next: 0,
    depth,
    inArray: parentInArray,
  };
}

function findError(section: Section, patch: unknown, limits: TwinLimits): TwinlogError | undefined {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch) || !isPlain(patch)) {
    return fail('PATCH_NOT_OBJECT', 'The patch must be a JSON object', [], { actual: typeName(patch) });
  }
  const path: string[] = [];
  const stack: Frame[] = [openFrame(patch, 0, false)];
  let size = 0;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.length) {
      stack.pop();
      if (stack.length > 0) path.pop();
      continue;
    }
    const index = frame.next++;
    let key: string;
    let value: unknown;
    let keyBytes = 0;
    if (frame.keys === undefined) {
      key = String(index);
      value = (frame.node as readonly unknown[])[index];
      path.push(key);
    } else {
      key = frame.keys[index]!;
      path.push(key);
      const checked = checkKey(key, path, limits);
      if (typeof checked !== 'number') return checked;
      keyBytes = checked;
      value = (frame.node as Readonly<Record<string, unknown>>)[key];
    }

    if (value === null) {
      if (frame.inArray) {
        return fail('NULL_IN_ARRAY', 'Arrays cannot contain null, not even in objects inside them', path, {});
      }
      path.pop();
      continue; // a delete: counts nothing toward the patch's size
    }
    switch (typeof value) {
      case 'string': {
        const bytes = utf8ByteLength(value);
        if (bytes > limits.maxStringBytes) {
          return fail(
            'STRING_TOO_LONG',
            `Property or Tag value should be maximum ${limits.maxStringBytes} bytes`,
            path,
            {
              limit: limits.maxStringBytes,
              actual: bytes,
            },
          );
        }
        size += keyBytes + twinByteLength(value);
        break;
      }
      case 'number': {
        if (!Number.isFinite(value)) {
          return fail('NUMBER_OUT_OF_RANGE', 'Numbers must be finite', path, { actual: String(value) });
        }
        if (Number.isInteger(value) && (value < limits.minInteger || value > limits.maxInteger)) {
          return fail(
            'NUMBER_OUT_OF_RANGE',
            `Integers must lie between ${limits.minInteger} and ${limits.maxInteger}`,
            path,
            {
              limit: value < limits.minInteger ? limits.minInteger : limits.maxInteger,
              min: limits.minInteger,
              max: limits.maxInteger,
              actual: value,
            },
          );
        }
        size += keyBytes + 8;
        break;
      }
      case 'boolean':
        size += keyBytes + 4;
        break;
      case 'object': {
        if (!Array.isArray(value) && !isPlain(value)) {
          return fail('VALUE_TYPE_INVALID', `Values of type ${typeName(value)} are not allowed`, path, {
            actual: typeName(value),
          });
        }
        const depth = frame.depth + 1;
        if (depth > limits.maxDepth) {
          return fail('DEPTH_EXCEEDED', `Nested depth of twin property exceeds ${limits.maxDepth}`, path, {
            limit: limits.maxDepth,
            actual: depth,
          });
        }
        size += keyBytes;
        stack.push(openFrame(value, depth, frame.inArray));
        continue; // keep `key` on the path while the container is open
      }
      default:
        return fail('VALUE_TYPE_INVALID', `Values of type ${typeName(value)} are not allowed`, path, {
          actual: typeName(value),
        });
    }
    path.pop();
  }
  const limit = sectionLimit(section, limits);
  if (size > limit) {
    return fail('SECTION_TOO_LARGE', `The ${section} patch is ${size} bytes, above the maximum of ${limit} bytes`, [], {
      section,
      limit,
      actual: size,
    });
  }
  return undefined;
}
