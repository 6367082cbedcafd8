/**
 * `decodeBatches` on hand-made record batches: the aborted-transaction walk (several aborted
 * transactions of one producer, a marker beyond the fetched bytes, interleaved producers),
 * append-time timestamps, and positions that move past markers.
 */
import type { RecordsBatch } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { decodeBatches } from './records.ts';

const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;
const LOG_APPEND_TIME = 1 << 3;

function batch(
  firstOffset: number,
  producerId: number,
  keys: string[],
  attributes = 0,
  times: { first?: number; max?: number } = {},
): RecordsBatch {
  return {
    firstOffset: BigInt(firstOffset),
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes,
    lastOffsetDelta: Math.max(0, keys.length - 1),
    firstTimestamp: BigInt(times.first ?? 1000),
    maxTimestamp: BigInt(times.max ?? 1000),
    producerId: BigInt(producerId),
    producerEpoch: 0,
    firstSequence: 0,
    records: keys.map((k, i) => ({
      length: 0,
      attributes: 0,
      timestampDelta: BigInt(i),
      offsetDelta: i,
      key: Buffer.from(k),
      value: Buffer.from(`v-${k}`),
      headers: [[Buffer.from('h'), Buffer.from(k)]],
    })),
  };
}
const marker = (offset: number, producerId: number): RecordsBatch =>
  batch(offset, producerId, ['m'], TRANSACTIONAL | CONTROL);
const keysOf = (r: ReturnType<typeof decodeBatches>): string[] => r.records.map((x) => x.key);

describe('decodeBatches', () => {
  it('drops every aborted transaction of a producer, keeps its committed ones and other producers’ records', () => {
    const batches = [
      batch(0, 7, ['a1', 'a2'], TRANSACTIONAL), // aborted
      marker(2, 7),
      batch(3, 7, ['c1'], TRANSACTIONAL), // committed
      marker(4, 7),
      batch(5, 9, ['other'], TRANSACTIONAL), // another producer, committed
      batch(6, 7, ['a3'], TRANSACTIONAL), // aborted again
      marker(7, 7),
      marker(8, 9),
      batch(9, -1, ['plain']),
    ];
    const aborted = [
      { producerId: 7n, firstOffset: 6n },
      { producerId: 7n, firstOffset: 0n },
    ];
    const out = decodeBatches('t', 0, batches, aborted, 0);
    expect(keysOf(out)).toEqual(['c1', 'other', 'plain']);
    expect(out.next).toBe(10);
    expect(out.records.map((r) => r.offset)).toEqual([3, 5, 9]);
  });

  it('drops an aborted transaction whose marker lies beyond the fetched bytes', () => {
    const out = decodeBatches(
      't',
      0,
      [batch(10, 3, ['x', 'y'], TRANSACTIONAL)],
      [{ producerId: 3n, firstOffset: 10n }],
      10,
    );
    expect(out.records).toEqual([]);
    expect(out.next).toBe(12);
  });

  it('stamps every record of a LogAppendTime batch with the batch’s max timestamp, else first + delta', () => {
    const appended = decodeBatches('t', 1, [batch(0, -1, ['a', 'b'], LOG_APPEND_TIME, { first: 5, max: 999 })], [], 0);
    expect(appended.records.map((r) => r.timestamp)).toEqual([999, 999]);
    const created = decodeBatches('t', 1, [batch(0, -1, ['a', 'b'], 0, { first: 5, max: 6 })], [], 0);
    expect(created.records.map((r) => r.timestamp)).toEqual([5, 6]);
    expect(created.records[0]).toMatchObject({ topic: 't', partition: 1, key: 'a', headers: { h: 'a' } });
    expect(Array.from(created.records[0]!.value!)).toEqual(Array.from(Buffer.from('v-a')));
  });

  it('skips records before `from` and from `to` on, and stays at `from` for an empty response', () => {
    const out = decodeBatches('t', 0, [batch(0, -1, ['a', 'b', 'c', 'd'])], [], 1, 3);
    expect(keysOf(out)).toEqual(['b', 'c']);
    expect(decodeBatches('t', 0, [], [], 42)).toEqual({ records: [], next: 42 });
    expect(decodeBatches('t', 0, undefined, [], 42)).toEqual({ records: [], next: 42 });
  });
});
