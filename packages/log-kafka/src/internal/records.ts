/**
 * Conversions between the `Log` port's records and kafkajs messages.
 */
import type { AppendRecord, LogRecord } from '@twinlog/core';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { HEADER_OVERHEAD, RECORD_OVERHEAD, asBuffer, recordPartition } from '../shared/records.ts';

/** A kafkajs message plus where it came from in the caller's array. */
export interface OutgoingMessage {
  readonly index: number;
  readonly partition: number;
  readonly message: Message;
  /** Rough wire size, for chunking requests below the broker's `message.max.bytes`. */
  readonly size: number;
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
    const partition = recordPartition(topic, r, index, partitionCount, partitionOf);
    const key = Buffer.from(r.key, 'utf8');
    const value = r.value === null ? null : asBuffer(r.value);
    let size = RECORD_OVERHEAD + key.length + (value?.length ?? 0);
    const message: Message = { key, value, partition };
    if (r.headers !== undefined) {
      const headers: IHeaders = {};
      for (const [k, v] of Object.entries(r.headers)) {
        headers[k] = v;
        size += Buffer.byteLength(k) + Buffer.byteLength(v) + HEADER_OVERHEAD;
      }
      message.headers = headers;
    }
    return { index, partition, message, size };
  });
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
