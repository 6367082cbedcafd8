/**
 * A non-allocating pre-scan of msgpack framing, run before `@msgpack/msgpack` decodes anything.
 *
 * msgpack-javascript has no depth limit and pre-allocates `new Array(n)` from a header alone, so
 * a few hostile bytes could claim huge nested arrays. The scan walks the framing iteratively with
 * a stack bounded by `maxDepth` and checks, before any allocation:
 *
 * - the depth of every map and array (the root container is depth 1; empty containers count);
 * - every declared length against its limit (`CODEC_LIMIT_EXCEEDED`);
 * - that each declared length fits in the bytes left (each item takes at least one byte), so an
 *   input that ends early is `CODEC_TRUNCATED`, whatever the header claims;
 * - that map keys are strings, and that no ext types or the reserved byte `0xc1` appear, and that
 *   no bytes trail the one top-level value (`CODEC_BAD_DATA`).
 *
 * It returns the total number of map entries, which the caller compares with the keys it finds
 * after decoding: fewer keys means a map repeated a key (msgpack-javascript keeps the last), which
 * is refused rather than resolved silently.
 */
import { TwinlogError } from '@twinlog/core';
import type { ResolvedDecodeLimits } from '../decodeLimits.ts';

function truncated(pos: number, len: number): TwinlogError {
  return new TwinlogError('CODEC_TRUNCATED', `msgpack input ended early (needed data at byte ${pos} of ${len})`, {
    details: { offset: pos, length: len },
  });
}

function bad(message: string, pos: number): TwinlogError {
  return new TwinlogError('CODEC_BAD_DATA', `${message} at byte ${pos}`, { details: { offset: pos } });
}

function over(what: string, actual: number, limit: number, pos: number): TwinlogError {
  return new TwinlogError('CODEC_LIMIT_EXCEEDED', `${what} ${actual} exceeds the limit ${limit} at byte ${pos}`, {
    details: { limit: what, actual, max: limit, offset: pos },
  });
}

/**
 * Scan `bytes` as exactly one msgpack value within `limits`; returns the total count of map entries.
 * @throws {TwinlogError} `CODEC_LIMIT_EXCEEDED`, `CODEC_TRUNCATED` or `CODEC_BAD_DATA`.
 */
export function scanMsgpack(bytes: Uint8Array, limits: ResolvedDecodeLimits): number {
  const end = bytes.length;
  if (end > limits.maxBytes) {
    throw new TwinlogError('CODEC_LIMIT_EXCEEDED', `input of ${end} bytes exceeds maxBytes ${limits.maxBytes}`, {
      details: { limit: 'maxBytes', actual: end, max: limits.maxBytes },
    });
  }
  // Items still expected in each open container (a map of n entries expects 2n), and whether it is a map.
  const left: number[] = [];
  const inMap: boolean[] = [];
  let depth = 0;
  let pos = 0;
  let mapEntries = 0;

  for (;;) {
    if (pos >= end) throw truncated(pos, end);
    const start = pos;
    const h = bytes[pos]!;
    // A map key is expected when the innermost container is a map with an even count left.
    if (depth > 0 && inMap[depth - 1] === true && (left[depth - 1]! & 1) === 0) {
      if (!((h >= 0xa0 && h <= 0xbf) || h === 0xd9 || h === 0xda || h === 0xdb)) {
        throw bad(`map key of type 0x${h.toString(16)} (keys must be strings)`, pos);
      }
    }
    let size = -1; // ≥ 0 for a container header
    let isMap = false;
    let strLen = -1;
    let binLen = -1;
    let header = 1;

    if (h <= 0x7f || h >= 0xe0) {
      pos += 1;
    } else if (h <= 0x8f) {
      size = h & 0x0f;
      isMap = true;
    } else if (h <= 0x9f) {
      size = h & 0x0f;
    } else if (h <= 0xbf) {
      strLen = h & 0x1f;
    } else {
      switch (h) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          pos += 1;
          break;
        case 0xcc:
        case 0xd0:
          pos += 2;
          break;
        case 0xcd:
        case 0xd1:
          pos += 3;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += 5;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += 9;
          break;
        case 0xd9:
        case 0xc4:
          header = 2;
          break;
        case 0xda:
        case 0xc5:
        case 0xdc:
        case 0xde:
          header = 3;
          break;
        case 0xdb:
        case 0xc6:
        case 0xdd:
        case 0xdf:
          header = 5;
          break;
        case 0xc1:
          throw bad('reserved type byte 0xc1', pos);
        default:
          // 0xc7–0xc9 ext 8/16/32, 0xd4–0xd8 fixext: twinlog records carry no extension types.
          throw bad(`extension type 0x${h.toString(16)} (not allowed)`, pos);
      }
      if (header > 1) {
        if (pos + header > end) throw truncated(end, end);
        const n =
          header === 2
            ? bytes[pos + 1]!
            : header === 3
              ? (bytes[pos + 1]! << 8) | bytes[pos + 2]!
              : bytes[pos + 1]! * 0x1000000 + ((bytes[pos + 2]! << 16) | (bytes[pos + 3]! << 8) | bytes[pos + 4]!);
        if (h === 0xd9 || h === 0xda || h === 0xdb) strLen = n;
        else if (h === 0xc4 || h === 0xc5 || h === 0xc6) binLen = n;
        else {
          size = n;
          isMap = h === 0xde || h === 0xdf;
        }
      }
    }

    if (strLen >= 0) {
      if (strLen > limits.maxStrLength) throw over('maxStrLength', strLen, limits.maxStrLength, start);
      pos += header + strLen;
    } else if (binLen >= 0) {
      if (binLen > limits.maxBinLength) throw over('maxBinLength', binLen, limits.maxBinLength, start);
      pos += header + binLen;
    } else if (size >= 0) {
      if (isMap) {
        if (size > limits.maxMapLength) throw over('maxMapLength', size, limits.maxMapLength, start);
      } else if (size > limits.maxArrayLength) {
        throw over('maxArrayLength', size, limits.maxArrayLength, start);
      }
      if (depth + 1 > limits.maxDepth) throw over('maxDepth', depth + 1, limits.maxDepth, start);
      pos += header;
      const items = isMap ? size * 2 : size;
      if (items > end - pos) throw truncated(end, end);
      if (isMap) mapEntries += size;
      if (items > 0) {
        left[depth] = items;
        inMap[depth] = isMap;
        depth += 1;
        continue;
      }
    }
    if (pos > end) throw truncated(end, end);

    // One item is complete: close every container it completes.
    while (depth > 0) {
      const rest = left[depth - 1]! - 1;
      if (rest > 0) {
        left[depth - 1] = rest;
        break;
      }
      depth -= 1;
    }
    if (depth === 0) break;
  }
  if (pos !== end) throw bad(`${end - pos} trailing byte(s) after the value`, pos);
  return mapEntries;
}
