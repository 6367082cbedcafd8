/**
 * Conversions between the `Log` port's records and @platformatic/kafka's wire structures:
 * outgoing messages with an explicit partition, and the record batches of a raw fetch response
 * turned into the port's `LogRecord`s (committed records only, append-time timestamps).
 */
import type { AppendRecord, LogRecord } from '@twinlog/core';
import type { MessageToProduce, RecordsBatch } from '@platformatic/kafka';
import { HEADER_OVERHEAD, RECORD_OVERHEAD, asBuffer, recordPartition } from '@twinlog/log-kafka/shared';

/** A message to produce plus where it came from in the caller's array. */
export interface OutgoingMessage {
  readonly index: number;
  readonly partition: number;
  readonly message: MessageToProduce;
  /** Rough wire size, for splitting requests below the broker's `message.max.bytes`. */
  readonly size: number;
}

/** Record batch attribute bits (Kafka's v2 record batch format). */
const TIMESTAMP_TYPE_LOG_APPEND = 1 << 3;
const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;

/**
 * The messages for `records` of physical topic `topic` with `partitionCount` partitions, each with
 * an explicit partition: the record's own, else `partitionOf(key)`.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when a record names a partition outside the topic.
 */
export function toOutgoingMessages(
  logicalTopic: string,
  topic: string,
  records: readonly AppendRecord[],
  partitionCount: number,
  partitionOf: (key: string) => number,
): OutgoingMessage[] {
  return records.map((r, index) => {
    const partition = recordPartition(logicalTopic, r, index, partitionCount, partitionOf);
    const key = Buffer.from(r.key, 'utf8');
    // A null value is a tombstone: the client writes it as a null record value.
    const message: MessageToProduce = {
      topic,
      partition,
      key,
      value: (r.value === null ? null : asBuffer(r.value)) as Buffer,
    };
    let size = RECORD_OVERHEAD + key.length + (r.value?.byteLength ?? 0);
    if (r.headers !== undefined) {
      const headers = new Map<Buffer, Buffer>();
      for (const [k, v] of Object.entries(r.headers)) {
        const hk = Buffer.from(k, 'utf8');
        const hv = Buffer.from(v, 'utf8');
        headers.set(hk, hv);
        size += hk.length + hv.length + HEADER_OVERHEAD;
      }
      message.headers = headers;
    }
    return { index, partition, message, size };
  });
}

export interface AbortedTransaction {
  readonly producerId: bigint;
  readonly firstOffset: bigint;
}

export interface DecodedBatches {
  /** Committed data records at or after `from` (and before `to`, when given), in offset order. */
  readonly records: LogRecord[];
  /** The offset after the last batch of the response (control and aborted batches included); `from` when there was none. */
  readonly next: number;
}

/**
 * The port's records in the batches of one partition of a fetch response read at
 * READ_COMMITTED, from offset `from` on.
 *
 * - **Aborted transactions.** The broker sends aborted records up to the last stable offset and
 *   lists, per producer, where its aborted transactions start. A data batch of a transactional
 *   producer is dropped while that producer has an aborted transaction begun at or before the
 *   batch and not yet closed by its marker; control batches (the markers) are never records. This
 *   is the walk the Java consumer does; the client's own filter misses aborted ranges whose marker
 *   lies beyond the fetched bytes and more than one aborted transaction of one producer.
 * - **Timestamps.** On a `LogAppendTime` topic the broker stamps the batch's `maxTimestamp` and
 *   leaves the per-record deltas as the producer wrote them: every record of such a batch takes
 *   the batch's `maxTimestamp`.
 * - Values are zero-copy views of the fetch buffer; a header that occurs more than once keeps its
 *   last value; a missing key is `''`.
 */
export function decodeBatches(
  logicalTopic: string,
  partition: number,
  batches: readonly RecordsBatch[] | undefined,
  aborted: readonly AbortedTransaction[],
  from: number,
  to = Number.POSITIVE_INFINITY,
): DecodedBatches {
  const records: LogRecord[] = [];
  if (batches === undefined || batches.length === 0) return { records, next: from };
  const pending = [...aborted].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
  const abortedProducers = new Set<bigint>();
  let next = from;
  for (const batch of batches) {
    const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    while (pending.length > 0 && pending[0]!.firstOffset <= last) abortedProducers.add(pending.shift()!.producerId);
    const lastOffset = Number(last);
    if (lastOffset + 1 > next) next = lastOffset + 1;
    const transactional = (batch.attributes & TRANSACTIONAL) !== 0;
    if ((batch.attributes & CONTROL) !== 0) {
      if (transactional) abortedProducers.delete(batch.producerId);
      continue;
    }
    if (transactional && abortedProducers.has(batch.producerId)) continue;
    const appendTime = (batch.attributes & TIMESTAMP_TYPE_LOG_APPEND) !== 0;
    for (const r of batch.records) {
      const offset = Number(batch.firstOffset) + r.offsetDelta;
      if (offset < from || offset >= to) continue;
      const headers: Record<string, string> = {};
      for (const [k, v] of r.headers) {
        if (k === null) continue;
        headers[k.toString('utf8')] = v === null ? '' : v.toString('utf8');
      }
      const value =
        r.value === null || r.value === undefined
          ? null
          : new Uint8Array(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      records.push({
        topic: logicalTopic,
        partition,
        offset,
        key: r.key === null || r.key === undefined ? '' : r.key.toString('utf8'),
        value,
        timestamp: Number(appendTime ? batch.maxTimestamp : batch.firstTimestamp + r.timestampDelta),
        headers,
      });
    }
  }
  return { records, next };
}
