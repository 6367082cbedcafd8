/**
 * Fixtures of the Kafka adapters' integration tests, on a real (possibly long-lived, shared)
 * broker: a run id that names every topic, group and transactional id of a test file, a kafkajs
 * client to check the adapter with (an independent client, so an adapter is not judged by its own
 * library), and the clean-up that leaves the broker as it was found.
 */
import { randomUUID } from 'node:crypto';
import type { Log, LogRecord, RunStatus, SubscribeOptions, Subscription, TopicSpec } from '@twinlog/core';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { afterAll, afterEach } from 'vitest';

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A subscription that reports how it ended and what it is doing (as both Kafka adapters' do). */
export interface StatusSubscription extends Subscription {
  readonly done: Promise<void>;
  status(): RunStatus;
}

/** A `Log` whose subscriptions report their status. */
export interface StatusLog extends Log {
  subscribe(options: SubscribeOptions): Promise<StatusSubscription>;
}

/** The options every Kafka adapter takes that the shared tests set. */
export interface KafkaLogSpecOptions {
  readonly brokers: string;
  readonly topicPrefix: string;
  readonly maxBytesPerPartition?: number;
  readonly topicConfig?: (spec: TopicSpec) => Readonly<Record<string, string>> | undefined;
}

/** Opens the adapter under test. */
export type OpenKafkaLog<L extends Log> = (options: KafkaLogSpecOptions) => L;

export interface KafkaTestRun {
  /** Every topic, group and transactional id of this run starts with this. */
  readonly run: string;
  /** A kafkajs client on the same broker. */
  readonly raw: Kafka;
}

/**
 * A fresh run id starting with `prefix`; every topic that starts with it is deleted after the
 * enclosing suite (`afterAll`).
 */
export function kafkaTestRun(brokers: string, prefix: string): KafkaTestRun {
  const run = `${prefix}-${randomUUID().slice(0, 8)}`;
  const raw = new Kafka({ brokers: brokers.split(','), clientId: 'twinlog-test', logLevel: logLevel.NOTHING });
  afterAll(async () => {
    const admin = raw.admin();
    await admin.connect();
    try {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(run));
      if (mine.length > 0) await admin.deleteTopics({ topics: mine });
    } finally {
      await admin.disconnect();
    }
  });
  return { run, raw };
}

export interface KafkaLogFixture<L extends Log> extends KafkaTestRun {
  /** A topic prefix of its own for each call (under the run's id). */
  freshPrefix(): string;
  /** Opens a log of the adapter under test, closed after the test. */
  open(topicPrefix: string, options?: Partial<Omit<KafkaLogSpecOptions, 'brokers' | 'topicPrefix'>>): L;
  /** Connects a kafkajs client, disconnected after the test. */
  connected<C extends Admin | Producer>(client: C): Promise<C>;
  /** Every record of a partition from `from` (to `to`, when given). */
  readAll(log: Log, topic: string, partition: number, from?: number, to?: number): Promise<LogRecord[]>;
}

/**
 * {@link kafkaTestRun} plus the logs and kafkajs clients a test opens, closed in `afterEach`.
 * Call it inside a `describe`.
 */
export function kafkaLogFixture<L extends Log>(
  brokers: string,
  prefix: string,
  openLog: OpenKafkaLog<L>,
): KafkaLogFixture<L> {
  const { run, raw } = kafkaTestRun(brokers, prefix);
  let opened: L[] = [];
  let clients: (Admin | Producer)[] = [];
  let prefixes = 0;

  afterEach(async () => {
    await Promise.allSettled(opened.map((l) => l.close()));
    await Promise.allSettled(clients.map((c) => c.disconnect()));
    opened = [];
    clients = [];
  });

  return {
    run,
    raw,
    freshPrefix: () => `${run}.${++prefixes}.`,
    open: (topicPrefix, options = {}) => {
      const log = openLog({ brokers, topicPrefix, ...options });
      opened.push(log);
      return log;
    },
    connected: async (client) => {
      clients.push(client);
      await client.connect();
      return client;
    },
    readAll: async (log, topic, partition, from = 0, to) => {
      const out: LogRecord[] = [];
      for await (const batch of log.read(topic, partition, to === undefined ? { from } : { from, to }))
        out.push(...batch);
      return out;
    },
  };
}
