/** The framing pre-scan on hand-written bytes: depth, declared lengths, truncation, key types. */
import { isTwinlogError, type TwinlogErrorCode } from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import type { ResolvedDecodeLimits } from '../decodeLimits.ts';
import { scanMsgpack } from './scanMsgpack.ts';

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const LOOSE: ResolvedDecodeLimits = {
  maxBytes: Infinity,
  maxDepth: Infinity,
  maxStrLength: Infinity,
  maxBinLength: Infinity,
  maxArrayLength: Infinity,
  maxMapLength: Infinity,
};

function scan(hexBytes: string, limits: Partial<ResolvedDecodeLimits> = {}): number | TwinlogErrorCode {
  try {
    return scanMsgpack(unhex(hexBytes), { ...LOOSE, ...limits });
  } catch (e) {
    if (isTwinlogError(e)) return e.code;
    throw e;
  }
}

describe('scanMsgpack', () => {
  it('accepts every scalar form and returns the map entry count', () => {
    for (const h of [
      '00',
      '7f',
      'e0',
      'ff',
      'c0',
      'c2',
      'c3',
      'cc01',
      'cd0102',
      'ce01020304',
      'cf0102030405060708',
      'd001',
      'd10102',
      'd201020304',
      'd30102030405060708',
      'ca01020304',
      'cb0102030405060708',
      'a0',
      'a161',
      'd90161',
      'da000161',
      'db0000000161',
      'c40101',
      'c5000101',
      'c60000000101',
    ]) {
      expect(scan(h), h).toBe(0);
    }
    expect(scan('82 a161 90 a162 81 a163 80')).toBe(3);
  });

  it('depth: the root container is 1, empty containers count', () => {
    expect(scan('91 91 90', { maxDepth: 3 })).toBe(0);
    expect(scan('91 91 91 90', { maxDepth: 3 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('81 a161 81 a162 80', { maxDepth: 3 })).toBe(2);
    expect(scan('81 a161 81 a162 81 a163 80', { maxDepth: 3 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('01', { maxDepth: 0 })).toBe(0);
    expect(scan('90', { maxDepth: 0 })).toBe('CODEC_LIMIT_EXCEEDED');
    // siblings do not add up
    expect(scan('93 91 90 91 90 91 90', { maxDepth: 3 })).toBe(0);
  });

  it('declared lengths against their limits, at the bound and one past', () => {
    expect(scan('a3616263', { maxStrLength: 3 })).toBe(0);
    expect(scan('a3616263', { maxStrLength: 2 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('c403010203', { maxBinLength: 3 })).toBe(0);
    expect(scan('c403010203', { maxBinLength: 2 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('93010203', { maxArrayLength: 3 })).toBe(0);
    expect(scan('93010203', { maxArrayLength: 2 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('82 a161 01 a162 02', { maxMapLength: 2 })).toBe(2);
    expect(scan('82 a161 01 a162 02', { maxMapLength: 1 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('01', { maxBytes: 1 })).toBe(0);
    expect(scan('0102', { maxBytes: 1 })).toBe('CODEC_LIMIT_EXCEEDED');
    // 32-bit lengths do not overflow into negatives
    expect(scan('dbffffffff', { maxStrLength: 2 ** 32 - 2 })).toBe('CODEC_LIMIT_EXCEEDED');
    expect(scan('ddffffffff')).toBe('CODEC_TRUNCATED');
  });

  it('truncation at every kind of boundary', () => {
    for (const h of [
      '',
      'cc',
      'cd01',
      'cf01020304050607',
      'a2 61',
      'd9',
      'd902 61',
      'da00',
      'c4',
      'c40201',
      '92 01',
      '81 a161',
      '81',
      'dc00',
      'de0001',
      'df00000001 a161',
    ]) {
      expect(scan(h), h).toBe('CODEC_TRUNCATED');
    }
  });

  it('bad data: trailing bytes, 0xc1, ext types, non-string map keys', () => {
    for (const h of [
      '01 01',
      '90 00',
      'c1',
      'd40100',
      'd5010000',
      'd601 00000000',
      'd701 0000000000000000',
      'd801' + '00'.repeat(16),
      'c70101 00',
      'c8000101 00',
      'c900000001 01 00',
      '81 01 02',
      '81 c0 02',
      '81 90 02',
      '82 a161 01 02 03',
    ]) {
      expect(scan(h), h).toBe('CODEC_BAD_DATA');
    }
    // a string key may be any str form
    expect(scan('81 d90161 01')).toBe(1);
    expect(scan('81 da000161 01')).toBe(1);
    expect(scan('81 db0000000161 01')).toBe(1);
  });
});
