/**
 * B1, the bare exactly-once floor of bench:pipeline: consume-transform-produce with kafkajs (the
 * Kafka adapter's client library) and nothing of twinlog. It reads the twin input topics with the
 * adapter's consumer settings, decodes nothing, and for each fetched batch of a partition writes one
 * output record per input record (same key, same value bytes, so the same size) to partition p of an
 * output topic and commits the batch's offsets with `sendOffsets`, all in one transaction.
 *
 * Transactional producers: one per partition number p, shared by both input topics' partition p —
 * the projector's fence (`projector-<group>-<p>`) maps the same way, so B1 opens as many producers
 * and transactions as the adapter does for the projector. Two batches of one fence (twin.backend p
 * and twin.device p, consumed concurrently) take turns on their producer, as the adapter's per-fence
 * mutex makes them. Producer settings are the adapter's: idempotent, one request in flight,
 * transaction timeout 60 s, retries from 5 ms, produce requests of at most 512 KiB sent one after
 * another, acks = all, and `sendOffsets` retried while the coordinator says it is busy. What B1 does
 * not do that the adapter does: wait until the commit's records and offsets are visible
 * (`awaitCommitVisibility`), and check or encode anything.
 */
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';

export interface B1Options {
  readonly brokers: readonly string[];
  /** Physical input topic names. */
  readonly inputs: readonly string[];
  /** Physical output topic (created by the caller with as many partitions as the inputs). */
  readonly output: string;
  /** Physical consumer group id; transactional ids derive from it. */
  readonly groupId: string;
  readonly partitions: number;
  readonly fetch: {
    readonly maxWaitTimeInMs: number;
    readonly minBytes: number;
    readonly maxBytes: number;
    readonly maxBytesPerPartition: number;
  };
  readonly partitionsConsumedConcurrently: number;
}

export interface B1Pipeline {
  readonly transactions: () => number;
  readonly records: () => number;
  /** Set when the pipeline failed (a transaction that could not be committed). */
  readonly failure: () => unknown;
  stop(): Promise<void>;
}

const TX_RETRY = { initialRetryTime: 5, maxRetryTime: 1000, retries: 37 } as const;
const MAX_REQUEST_BYTES = 512 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const isBusy = (e: unknown): boolean => {
  for (
    let x = e as { code?: unknown; type?: unknown; cause?: unknown } | undefined;
    x !== undefined && x !== null;
    x = x.cause as typeof x
  ) {
    if (
      x.type === 'CONCURRENT_TRANSACTIONS' ||
      x.type === 'COORDINATOR_LOAD_IN_PROGRESS' ||
      x.code === 51 ||
      x.code === 14
    )
      return true;
  }
  return false;
};

/** Starts the pipeline: producers connected, consumer joined and running. */
export async function startB1(options: B1Options): Promise<B1Pipeline> {
  const { brokers, inputs, output, groupId, partitions, fetch } = options;
  const kafka = new Kafka({
    clientId: 'twinlog-bench-b1',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
  });
  const producers: Producer[] = await Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const producer = kafka.producer({
        transactionalId: `${groupId}-tx-${p}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: 60_000,
        retry: TX_RETRY,
      });
      await producer.connect();
      return producer;
    }),
  );
  /** The tail of each producer's queue of transactions. */
  const turns: Promise<unknown>[] = producers.map(() => Promise.resolve());
  const consumer = kafka.consumer({
    groupId,
    readUncommitted: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    rebalanceTimeout: 60_000,
    ...fetch,
  });
  let transactions = 0;
  let records = 0;
  let failure: unknown;

  const commit = async (topic: string, partition: number, messages: Message[], next: string): Promise<void> => {
    const tx = await producers[partition]!.transaction();
    try {
      let chunk: Message[] = [];
      let bytes = 0;
      const send = async (): Promise<void> => {
        if (chunk.length === 0) return;
        await tx.send({ topic: output, acks: -1, messages: chunk });
        chunk = [];
        bytes = 0;
      };
      for (const m of messages) {
        const size = (m.value as Buffer).length + ((m.key as Buffer | null)?.length ?? 0) + 70; // + record overhead, roughly
        if (bytes + size > MAX_REQUEST_BYTES) await send();
        chunk.push(m);
        bytes += size;
      }
      await send();
      for (let delay = 5; ; delay = Math.min(delay * 2, 500)) {
        try {
          await tx.sendOffsets({
            consumerGroupId: groupId,
            topics: [{ topic, partitions: [{ partition, offset: next }] }],
          });
          break;
        } catch (e) {
          if (!isBusy(e)) throw e;
          await sleep(delay);
        }
      }
      await tx.commit();
    } catch (e) {
      await tx.abort().catch(() => {});
      throw e;
    }
    transactions++;
    records += messages.length;
  };

  await consumer.connect();
  await consumer.subscribe({ topics: [...inputs], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      const messages: Message[] = batch.messages.map((m) => ({
        key: m.key,
        value: m.value,
        partition: batch.partition,
      }));
      const next = String(Number(batch.lastOffset()) + 1);
      const turn = turns[batch.partition]!.then(() => commit(batch.topic, batch.partition, messages, next));
      turns[batch.partition] = turn.catch(() => {});
      try {
        await turn;
      } catch (e) {
        failure ??= e;
        throw e;
      }
    },
  });
  return {
    transactions: () => transactions,
    records: () => records,
    failure: () => failure,
    async stop() {
      await consumer.disconnect().catch(() => {});
      await Promise.all(producers.map((p) => p.disconnect().catch(() => {})));
    },
  };
}
