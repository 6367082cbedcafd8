/**
 * A feed over every partition of one output topic, as an async iterator: `log.read` loops from
 * per-partition positions, polling with a short sleep when nothing is new. No consumer group, no
 * committed offsets, no background work: the log is only read while `next()` is pending.
 */
import { decodeOutputRecord, type OutputRecord } from '@twinlog/codec';
import { isTwinlogError, partitionFor, type Log, type LogRecord, type TwinlogError } from '@twinlog/core';
import { CHECKPOINT_KEY } from '@twinlog/projector';
import { sleep } from './sleep.ts';

/**
 * Where a feed starts.
 *
 * @example
 * client.changes({ from: 'earliest' }) // the whole retained topic
 */
export type FeedStart = 'earliest' | 'latest';

/**
 * Options of the client's feeds.
 *
 * @example
 * client.changes({ deviceId: 'dev1', onBadRecord: (r, e) => console.warn(r.offset, e.code) })
 */
export interface FeedOptions {
  /** `'latest'` (default): records appended after the call; `'earliest'`: the whole retained topic. */
  readonly from?: FeedStart;
  /** Only this device's records (only its partition is read). */
  readonly deviceId?: string;
  /** Sleep between polls when nothing is new, ms (default: the client's `pollIntervalMs`). */
  readonly pollIntervalMs?: number;
  /** Called for a record that does not decode as the feed's kind; the record is skipped. */
  readonly onBadRecord?: (record: LogRecord, error: TwinlogError) => void;
}

/**
 * An async iterator of decoded output records. Break out of `for await` (or call `return()`) to
 * stop it. `ready` resolves once the start positions are fixed: with `from: 'latest'`, records
 * appended after `ready` are certainly seen (the positions are taken when the feed is created,
 * not at the first `next()`).
 *
 * Order: records of one device (one partition) come in log order; partitions are interleaved in
 * no particular order. Each feed reads with plain `log.read` loops (no consumer group, no
 * committed offsets), polling every `pollIntervalMs` only while a `next()` is pending.
 *
 * @example
 * const feed = client.changes({ deviceId: 'dev1' })
 * await feed.ready
 * for await (const change of feed) { if (change.section === 'desired') break }
 */
export interface TwinFeed<T> extends AsyncIterableIterator<T> {
  readonly ready: Promise<void>;
}

type Kind = OutputRecord['kind'];

export function tailTopic<K extends Kind>(
  log: Log,
  topic: string,
  kind: K,
  { from = 'latest', deviceId, pollIntervalMs = 50, onBadRecord }: FeedOptions,
): TwinFeed<Extract<OutputRecord, { kind: K }>> {
  // positions are fixed at call time, not at the first next()
  const start = (async () => {
    const count = await log.partitionCount(topic);
    const partitions = deviceId === undefined ? [...Array(count).keys()] : [partitionFor(deviceId, count)];
    const positions = from === 'earliest' ? new Array<number>(count).fill(0) : await log.endOffsets(topic);
    return { partitions, positions };
  })();
  const ready = start.then(() => undefined);
  ready.catch(() => {});

  async function* run(): AsyncGenerator<Extract<OutputRecord, { kind: K }>, void, undefined> {
    const { partitions, positions } = await start;
    for (;;) {
      let any = false;
      for (const p of partitions) {
        for await (const records of log.read(topic, p, { from: positions[p] ?? 0 })) {
          for (const r of records) {
            any = true;
            positions[p] = r.offset + 1;
            if (r.value === null || r.key === CHECKPOINT_KEY) continue;
            if (deviceId !== undefined && r.key !== deviceId) continue;
            let decoded: Extract<OutputRecord, { kind: K }>;
            try {
              decoded = decodeOutputRecord(r.value, kind);
            } catch (e) {
              if (!isTwinlogError(e)) throw e;
              onBadRecord?.(r, e);
              continue;
            }
            yield decoded;
          }
        }
      }
      if (!any) await sleep(pollIntervalMs);
    }
  }

  const gen = run();
  return {
    ready,
    next: () => gen.next(),
    return: (value?: unknown) => gen.return(value as undefined),
    throw: (e?: unknown) => gen.throw(e),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
