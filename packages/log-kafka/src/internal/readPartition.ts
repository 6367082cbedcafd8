/**
 * `Log.read` on kafkajs: one partition from `from` until the consumer's position reaches `to`.
 *
 * kafkajs has no manual assignment, so the reader is a short-lived consumer in a group of its own
 * (a random id) whose assigner hands it exactly that partition. It reads committed data only
 * (`readUncommitted: false`), and starts at `from` through a `seek` registered right after `run()`
 * creates the consumer group and before the first fetch can start.
 *
 * **Stopping by position.** Transaction markers take offsets but are never delivered, and neither
 * are aborted records, so the offset `to - 1` may never arrive as a record. The position advances
 * past them anyway: kafkajs reports every processed batch, including one left empty by filtering,
 * through `END_BATCH_PROCESS` with the batch's last offset. The read ends when the position reaches
 * `to`. Below the last stable offset there is always a batch at or after the position to fetch (the
 * active segment, which holds the last batch, is never compacted), so the position keeps moving; a
 * `to` beyond it waits for records to come. One case would wait forever: records deleted (by
 * retention) while the read runs, up to `to` or beyond. So when the position stalls for two whole
 * fetch cycles, the log start offset is checked, and the read ends once it is at or past `to`.
 * Nothing else ends a read early: a stall is never taken for "nothing left", since a fetch that
 * failed (a leader moving) looks just like one that found nothing.
 *
 * **Back-pressure.** The consumer hands over one batch and waits (heartbeating) until the caller
 * asks for the next one, so a slow caller never makes the reader buffer more than a batch.
 */
import { TwinlogError, type LogRecord } from '@twinlog/core';
import type { EachBatchPayload, Kafka } from 'kafkajs';
import { toLogRecord } from './records.ts';
import { singlePartitionAssigner } from './singlePartitionAssigner.ts';
import type { ConsumerTuning } from './startSubscription.ts';
import { withHeartbeat } from './withHeartbeat.ts';

export interface ReadPartitionOptions {
  readonly kafka: Kafka;
  /** A group id used by nothing else. */
  readonly groupId: string;
  /** Physical topic name. */
  readonly topic: string;
  /** Logical topic name, for the records. */
  readonly logicalTopic: string;
  readonly partition: number;
  readonly from: number;
  readonly to: number;
  readonly tuning: ConsumerTuning;
  /** The partition's log start offset (the first offset not deleted). */
  readonly logStart: () => Promise<number>;
  /** Registers a closer for `Log.close()`; returns the unregister function. */
  readonly track: (close: () => Promise<void>) => () => void;
}

type Item = { readonly records: readonly LogRecord[] } | { readonly error: unknown } | { readonly done: true };

/** Fetch cycles without progress before the log start offset is checked. */
const IDLE_CYCLES = 2;
/** Restarts after retriable crashes before the read gives up. */
const MAX_RESTARTS = 5;

export async function* readPartition(o: ReadPartitionOptions): AsyncGenerator<readonly LogRecord[], void, undefined> {
  const { topic, partition, from, to, tuning } = o;
  if (from >= to) return;

  const consumer = o.kafka.consumer({
    groupId: o.groupId,
    partitionAssigners: [singlePartitionAssigner(topic, partition)],
    readUncommitted: false,
    ...tuning,
  });

  const items: Item[] = [];
  let wakeReader: (() => void) | undefined;
  let wakeConsumer: (() => void) | undefined;
  let finished = false;
  let position = from;

  const push = (item: Item): void => {
    items.push(item);
    wakeReader?.();
    wakeReader = undefined;
  };
  const finish = (item: Item = { done: true }): void => {
    if (finished) return;
    finished = true;
    push(item);
    wakeConsumer?.();
    wakeConsumer = undefined;
  };
  const advance = (lastOffset: number): void => {
    if (lastOffset + 1 > position) position = lastOffset + 1;
    if (position >= to) finish();
  };

  // Stall detection, in whole fetch cycles (a cycle = one fetch + handling its batches).
  let cyclePosition = -1;
  let idle = 0;
  let checking = false;
  consumer.on(consumer.events.FETCH_START, () => {
    if (finished) return;
    if (position !== cyclePosition) {
      cyclePosition = position;
      idle = 0;
      return;
    }
    if (++idle < IDLE_CYCLES || checking) return;
    checking = true;
    o.logStart()
      .then((low) => {
        if (low >= to) finish();
      })
      .catch(() => {})
      .finally(() => {
        checking = false;
      });
  });

  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic === topic && payload.partition === partition) advance(Number(payload.lastOffset));
  });

  // Every join starts from the group's committed offset, which a read group never has: after a
  // rejoin (a session that timed out) or a restart (below), go back to where this read was.
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (!finished) consumer.seek({ topic, partition, offset: String(position) });
  });

  // kafkajs restarts a consumer after a retriable crash (e.g. the group coordinator still loading
  // on a broker that just started); a read lets it, a few times.
  let restarts = 0;
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart || ++restarts > MAX_RESTARTS) finish({ error: payload.error });
  });

  const eachBatch = async ({ batch, heartbeat }: EachBatchPayload): Promise<void> => {
    if (finished || batch.topic !== topic || batch.partition !== partition) return;
    const records: LogRecord[] = [];
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (offset >= from && offset < to) records.push(toLogRecord(o.logicalTopic, partition, m));
    }
    if (records.length > 0) {
      push({ records });
      await withHeartbeat(heartbeat, tuning.heartbeatInterval, async () => {
        if (finished) return;
        await new Promise<void>((resolve) => {
          wakeConsumer = resolve;
        });
      });
    }
    advance(Number(batch.lastOffset()));
  };

  let closing: Promise<void> | undefined;
  /** Ends the read (a caller still iterating gets `reason` next) and releases the consumer. */
  const close = (reason: Item = { done: true }): Promise<void> => {
    finish(reason);
    closing ??= consumer.disconnect().catch(() => {});
    return closing;
  };
  // `Log.close()` while the caller still iterates: the read fails rather than look complete.
  const untrack = o.track(() =>
    close({ error: new TwinlogError('LOG_CLOSED', 'twinlog: the Kafka log was closed during a read') }),
  );

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    // `run` creates the consumer group synchronously, then awaits the join: the seek registered
    // here is applied by the very first fetch.
    const running = consumer.run({ autoCommit: false, eachBatch });
    consumer.seek({ topic, partition, offset: String(from) });
    await running;
    for (;;) {
      const item = items.shift();
      if (item === undefined) {
        // The caller wants more: let the consumer go on, then wait for its next item.
        wakeConsumer?.();
        wakeConsumer = undefined;
        await new Promise<void>((resolve) => {
          wakeReader = resolve;
        });
        continue;
      }
      if ('done' in item) return;
      if ('error' in item) throw item.error;
      yield item.records;
    }
  } finally {
    untrack();
    await close();
  }
}
