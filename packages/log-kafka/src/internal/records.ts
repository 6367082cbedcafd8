/**
 * Conversions between the `Log` port's records and kafkajs messages, and request chunking.
 */
import { TwinlogError, type AppendRecord, type LogRecord } from '@twinlog/core';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';

/** A kafkajs message plus where it came from in the caller's array. */
export interface OutgoingMessage {
  readonly index: number;
  readonly partition: number;
  readonly message: Message;
  /** Rough wire size, for chunking requests below the broker's `message.max.bytes`. */
  readonly size: number;
}

/** Per-record overhead of the v2 record format, rounded up (varints, attributes, deltas). */
const RECORD_OVERHEAD = 32;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The kafkajs messages for `records` of a topic with `partitionCount` partitions, each with an
 * explicit partition: the record's own, else `partitionOf(key)`.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when a record names a partition outside
 *   `[0, partitionCount)`.
 */
export function toOutgoingMessages(
  topic: string,
  records: readonly AppendRecord[],
  partitionCount: number,
  partitionOf: (key: string) => number,
): OutgoingMessage[] {
  return records.map((r, index) => {
    const partition = r.partition ?? partitionOf(r.key);
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitionCount) {
      throw new TwinlogError('LOG_ARGUMENT_INVALID', `partition ${partition} of record ${index} is outside ${topic}'s ${partitionCount} partitions`, {
        details: { topic, partition, partitions: partitionCount },
      });
    }
    const key = Buffer.from(r.key, 'utf8');
    const value = r.value === null ? null : asBuffer(r.value);
    let size = RECORD_OVERHEAD + key.length + (value?.length ?? 0);
    const message: Message = { key, value, partition };
    if (r.headers !== undefined) {
      const headers: IHeaders = {};
      for (const [k, v] of Object.entries(r.headers)) {
        headers[k] = v;
        size += Buffer.byteLength(k) + Buffer.byteLength(v) + 8;
      }
      message.headers = headers;
    }
    return { index, partition, message, size };
  });
}

/** Splits `items` into runs whose summed `size` stays below `maxBytes` (a run has at least one item). */
export function chunkBySize<T extends { readonly size: number }>(items: readonly T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && bytes + item.size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function headerString(v: IHeaders[string]): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : headerString(v[v.length - 1]);
  return typeof v === 'string' ? v : v.toString('utf8');
}

/**
 * The port's record for a consumed kafkajs message. Values are zero-copy `Uint8Array` views of the
 * fetch buffer; a header that occurs more than once keeps its last value; a missing key is `''`.
 */
export function toLogRecord(topic: string, partition: number, m: KafkaMessage): LogRecord {
  const headers: Record<string, string> = {};
  if (m.headers !== undefined) {
    for (const [k, v] of Object.entries(m.headers)) {
      const s = headerString(v);
      if (s !== undefined) headers[k] = s;
    }
  }
  const value = m.value === null ? null : new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength);
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key === null ? '' : m.key.toString('utf8'),
    value,
    timestamp: Number(m.timestamp),
    headers,
  };
}
