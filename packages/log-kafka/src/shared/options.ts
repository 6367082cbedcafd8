/**
 * The options both Kafka adapters take, and their defaults: the two place, name, size and time
 * everything the same way, so a fleet can move from one client to the other.
 */
import { TwinlogError, type TopicSpec } from '@twinlog/core';

export interface KafkaLogCommonOptions {
  /** Bootstrap brokers: `host:port` strings, or one comma-separated string (as in `KAFKA_BROKERS`). */
  readonly brokers: string | readonly string[];
  /** Client id (default `twinlog`). */
  readonly clientId?: string;
  /**
   * Prepended to every topic, consumer group and transactional id (default `''`), so several
   * fleets (or test runs) can share one cluster: the port's `'twin.backend'` is Kafka's
   * `${topicPrefix}twin.backend`.
   */
  readonly topicPrefix?: string;
  /** Replication factor of created topics (default: the broker count, at most 3). */
  readonly replicationFactor?: number;
  /**
   * Extra topic configs for `ensureTopics`, merged over twinlog's own
   * (`message.timestamp.type=LogAppendTime`, plus `cleanup.policy=compact` for compacted topics),
   * e.g. `segment.ms` for compaction tests.
   */
  readonly topicConfig?: (spec: TopicSpec) => Readonly<Record<string, string>> | undefined;
  /** Transaction timeout of `commitBatch` producers, ms (default 60 000; at most the broker's `transaction.max.timeout.ms`). */
  readonly transactionTimeout?: number;
  /** Consumer session timeout, ms (default 10 000; within the broker's group session bounds). */
  readonly sessionTimeout?: number;
  /** Consumer heartbeat interval, ms (default 1 000): also how soon members notice a rebalance. */
  readonly heartbeatInterval?: number;
  /** How long a rebalance waits for members to rejoin, ms (default 60 000). */
  readonly rebalanceTimeout?: number;
  /** How long a subscription's fetch waits for data, ms (default 250). */
  readonly maxWaitTimeInMs?: number;
  /** How long a `read`'s fetch waits for data, ms (default 100). */
  readonly readMaxWaitTimeInMs?: number;
  /** Fetch size limits (defaults: 16 MiB per fetch, 4 MiB per partition). */
  readonly maxBytes?: number;
  readonly maxBytesPerPartition?: number;
  /**
   * Batches of how many partitions a subscription hands over at once (default 1). Above 1, batches
   * of different partitions, and of partition *i* of different topics, may overlap.
   */
  readonly partitionsConsumedConcurrently?: number;
  /** Appends are split into produce requests of about this many bytes (default 512 KiB). */
  readonly maxRequestBytes?: number;
  /**
   * Whether `commitBatch` and `commitOffsets` resolve only once their records and offsets are
   * visible to readers (default true). Kafka acknowledges a commit once it is decided, and writes
   * the commit markers just after; until then read_committed readers and offset fetches still see
   * the old state.
   */
  readonly awaitCommitVisibility?: boolean;
  /** Request timeout, ms (default 30 000). */
  readonly requestTimeout?: number;
}

/** The common options with their defaults filled in, and the brokers as a list. */
export type KafkaLogSettings = { readonly brokers: string[] } & {
  readonly [K in Exclude<keyof KafkaLogCommonOptions, 'brokers' | 'replicationFactor' | 'topicConfig'>]-?: Exclude<
    KafkaLogCommonOptions[K],
    undefined
  >;
} & {
  readonly replicationFactor: number | undefined;
  readonly topicConfig: KafkaLogCommonOptions['topicConfig'] | undefined;
};

/** The defaults of the common options (see {@link KafkaLogCommonOptions}). */
export const KAFKA_LOG_DEFAULTS = {
  clientId: 'twinlog',
  topicPrefix: '',
  transactionTimeout: 60_000,
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
  rebalanceTimeout: 60_000,
  maxWaitTimeInMs: 250,
  readMaxWaitTimeInMs: 100,
  maxBytes: 16 * 1024 * 1024,
  maxBytesPerPartition: 4 * 1024 * 1024,
  partitionsConsumedConcurrently: 1,
  maxRequestBytes: 512 * 1024,
  awaitCommitVisibility: true,
  requestTimeout: 30_000,
} as const satisfies Omit<KafkaLogSettings, 'brokers' | 'replicationFactor' | 'topicConfig'>;

/**
 * `options` with every default filled in (an option given as `undefined` takes its default).
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when no broker is given (`caller` names the factory).
 */
export function kafkaLogSettings(options: KafkaLogCommonOptions, caller: string): KafkaLogSettings {
  const given = Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<KafkaLogCommonOptions>;
  return {
    ...KAFKA_LOG_DEFAULTS,
    replicationFactor: undefined,
    topicConfig: undefined,
    ...given,
    brokers: parseBrokers(options.brokers, caller),
  };
}

function parseBrokers(brokers: string | readonly string[], caller: string): string[] {
  const list = (typeof brokers === 'string' ? brokers.split(',') : [...brokers])
    .map((b) => b.trim())
    .filter((b) => b !== '');
  if (list.length === 0) throw new TwinlogError('LOG_ARGUMENT_INVALID', `${caller}: no brokers given`);
  return list;
}
