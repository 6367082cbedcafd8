import { isTwinlogError, partitionFor } from '@twinlog/core';
import fc from 'fast-check';
import { Partitioners, type KafkaMessage, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { chunkBySize } from '../shared/records.ts';
import { toLogRecord, toOutgoingMessages } from './records.ts';

const metadata = (n: number): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));

describe('toOutgoingMessages', () => {
  it('puts every key where kafkajs’s default (Java-compatible murmur2) partitioner does (property)', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 256 }),
        (keys, n) => {
          const out = toOutgoingMessages(
            't',
            keys.map((key) => ({ key, value: null })),
            n,
            (key) => partitionFor(key, n),
          );
          out.forEach((m, i) => {
            expect(m.index).toBe(i);
            expect(m.message.partition).toBe(m.partition);
            expect(m.partition).toBe(
              kafkajs({ topic: 't', partitionMetadata: metadata(n), message: { key: keys[i]!, value: null } }),
            );
          });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('keeps an explicit partition and rejects one outside the topic', () => {
    const [m] = toOutgoingMessages('t', [{ key: 'k', value: new Uint8Array([1]), partition: 2 }], 3, () => 0);
    expect(m?.partition).toBe(2);
    for (const partition of [3, -1, 1.5]) {
      let error: unknown;
      try {
        toOutgoingMessages('t', [{ key: 'k', value: null, partition }], 3, () => 0);
      } catch (e) {
        error = e;
      }
      expect(isTwinlogError(error, 'LOG_ARGUMENT_INVALID')).toBe(true);
    }
  });

  it('encodes keys as UTF-8 and passes values and headers through without copying', () => {
    const value = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
    const [m] = toOutgoingMessages('t', [{ key: 'grüße', value, headers: { a: 'b' } }], 1, () => 0);
    expect(m?.message.key).toEqual(Buffer.from('grüße', 'utf8'));
    const v = m?.message.value as Buffer;
    expect(v.buffer).toBe(value.buffer);
    expect([...v]).toEqual([8, 7]);
    expect(m?.message.headers).toEqual({ a: 'b' });
  });
});

describe('chunkBySize', () => {
  it('keeps order, loses nothing, and stays under the limit unless one item alone exceeds it (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 150 }),
        (sizes, max) => {
          const items = sizes.map((size, i) => ({ size, i }));
          const chunks = chunkBySize(items, max);
          expect(chunks.flat()).toEqual(items);
          for (const chunk of chunks) {
            expect(chunk.length).toBeGreaterThan(0);
            const total = chunk.reduce((n, x) => n + x.size, 0);
            if (chunk.length > 1) expect(total).toBeLessThanOrEqual(max);
          }
        },
      ),
    );
  });
});

describe('toLogRecord', () => {
  const message = (over: Partial<KafkaMessage>): KafkaMessage =>
    ({
      key: Buffer.from('dev-1'),
      value: Buffer.from([1, 2]),
      timestamp: '1700000000000',
      attributes: 0,
      offset: '41',
      headers: {},
      ...over,
    }) as KafkaMessage;

  it('converts offsets and timestamps to numbers, keys and headers to strings', () => {
    const r = toLogRecord(
      'twin.device',
      3,
      message({
        headers: { a: Buffer.from('x'), b: 'y', many: [Buffer.from('1'), Buffer.from('2')], none: undefined },
      }),
    );
    expect(r).toEqual({
      topic: 'twin.device',
      partition: 3,
      offset: 41,
      key: 'dev-1',
      value: new Uint8Array([1, 2]),
      timestamp: 1_700_000_000_000,
      headers: { a: 'x', b: 'y', many: '2' },
    });
    expect(Object.getPrototypeOf(r.value)).toBe(Uint8Array.prototype);
  });

  it('keeps tombstones null, and a missing key becomes the empty string', () => {
    const r = toLogRecord('t', 0, message({ key: null, value: null }));
    expect(r.value).toBeNull();
    expect(r.key).toBe('');
  });
});
