/**
 * `Log.read` on @platformatic/kafka: one partition from `from` until the position reaches `to`,
 * by plain fetches at READ_COMMITTED on the log's shared reader (no consumer group, no join).
 *
 * **Stopping by position.** Transaction markers and aborted records take offsets but are never
 * records; the position still moves past them, because it follows the batches of each response
 * (control and aborted ones included), so the read ends when the position reaches `to` even if
 * offset `to - 1` is a marker. A `to` beyond the last stable offset waits for records to come.
 * Every response carries the partition's log start offset: a position below it (records deleted
 * by retention) jumps to it, and a log start at or past `to` ends the read.
 *
 * **Back-pressure.** One fetch at a time, the next one only when the caller asks for more.
 */
import { TwinlogError, type LogRecord } from '@twinlog/core';
import type { Consumer } from '@platformatic/kafka';
import { isOffsetOutOfRangeError, isTransientError } from './errors.ts';
import { fetchPartitions, type FetchTuning } from './fetchPartitions.ts';
import { decodeBatches } from './records.ts';

export interface ReadPartitionOptions {
  readonly reader: () => Promise<Consumer>;
  /** Physical topic name. */
  readonly topic: string;
  /** Logical topic name, for the records. */
  readonly logicalTopic: string;
  readonly partition: number;
  readonly from: number;
  readonly to: number;
  readonly tuning: FetchTuning;
  /** The partition's log start offset (the first offset not deleted). */
  readonly logStart: () => Promise<number>;
  /** Whether the log was closed (the read then fails rather than look complete). */
  readonly isClosed: () => boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** How long a read rides out transient failures in a row before it gives up, ms. */
const GIVE_UP_MS = 30_000;

export async function* readPartition(o: ReadPartitionOptions): AsyncGenerator<readonly LogRecord[], void, undefined> {
  const { topic, partition, to, tuning } = o;
  let position = o.from;
  let failingSince: number | undefined;
  let delay = 5;
  while (position < to) {
    if (o.isClosed()) throw new TwinlogError('LOG_CLOSED', 'twinlog: the Kafka log was closed during a read');
    let results;
    try {
      results = await fetchPartitions(await o.reader(), [{ topic, partition, offset: position }], tuning);
      failingSince = undefined;
      delay = 5;
    } catch (e) {
      if (o.isClosed())
        throw new TwinlogError('LOG_CLOSED', 'twinlog: the Kafka log was closed during a read', { cause: e });
      if (isOffsetOutOfRangeError(e)) {
        const low = await o.logStart();
        if (low >= to) return;
        if (low > position) {
          position = low;
          continue;
        }
      } else if (!isTransientError(e)) {
        throw e;
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > GIVE_UP_MS) throw e;
      await sleep(delay);
      delay = Math.min(delay * 2, 500);
      continue;
    }
    const result = results.find((r) => r.topic === topic && r.partition === partition);
    if (result === undefined) continue;
    if (result.logStartOffset >= to) return;
    if (result.logStartOffset > position) {
      position = result.logStartOffset;
      continue;
    }
    const { records, next } = decodeBatches(o.logicalTopic, partition, result.batches, result.aborted, position, to);
    position = Math.max(position, next);
    if (o.isClosed()) throw new TwinlogError('LOG_CLOSED', 'twinlog: the Kafka log was closed during a read');
    if (records.length > 0) yield records;
  }
}
