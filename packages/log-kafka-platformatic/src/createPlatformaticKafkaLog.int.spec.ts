/**
 * The @platformatic/kafka log against a real broker: the `Log` acceptance suite, then the Kafka
 * specifics the kafkajs adapter is held to (createKafkaLog.int.spec.ts): fencing of a zombie
 * transaction, back-to-back transactions on one fence, topic prefix isolation, topic configs on
 * creation, append-time timestamps, reads that stop by position, and the subscription's
 * rebalance announcements. The zombie and the configs are checked with kafkajs, an independent
 * client, so the adapter is not judged by its own library.
 */
import { randomUUID } from 'node:crypto';
import { isTwinlogError, partitionFor, type LogRecord } from '@twinlog/core';
import { runLogAcceptanceSuite } from '@twinlog/core/testing';
import { ConfigResourceTypes, Kafka, Partitioners, logLevel, type Admin, type Producer } from 'kafkajs';
import { afterAll, afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createPlatformaticKafkaLog, type PlatformaticKafkaLog, type PlatformaticKafkaLogOptions } from './index.ts';

const BROKERS = inject('kafkaBrokers');
const RUN = `tlp-${randomUUID().slice(0, 8)}`;

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

const raw = new Kafka({ brokers: BROKERS.split(','), clientId: 'twinlog-test', logLevel: logLevel.NOTHING });

afterAll(async () => {
  const admin = raw.admin();
  await admin.connect();
  try {
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(RUN));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
  } finally {
    await admin.disconnect();
  }
});

runLogAcceptanceSuite('kafka (platformatic)', async () => ({
  log: createPlatformaticKafkaLog({ brokers: BROKERS, topicPrefix: `${RUN}.acc.` }),
  now: () => Date.now(),
}));

describe('Kafka log on @platformatic/kafka', () => {
  let opened: PlatformaticKafkaLog[] = [];
  let clients: (Admin | Producer)[] = [];
  let prefixes = 0;

  afterEach(async () => {
    await Promise.allSettled(opened.map((l) => l.close()));
    await Promise.allSettled(clients.map((c) => c.disconnect()));
    opened = [];
    clients = [];
  });

  const freshPrefix = (): string => `${RUN}.${++prefixes}.`;
  const open = (topicPrefix: string, options: Partial<PlatformaticKafkaLogOptions> = {}): PlatformaticKafkaLog => {
    const log = createPlatformaticKafkaLog({ brokers: BROKERS, topicPrefix, ...options });
    opened.push(log);
    return log;
  };
  const connected = async <C extends Admin | Producer>(client: C): Promise<C> => {
    clients.push(client);
    await client.connect();
    return client;
  };
  const readAll = async (log: PlatformaticKafkaLog, topic: string, partition: number, from = 0, to?: number): Promise<LogRecord[]> => {
    const out: LogRecord[] = [];
    for await (const batch of log.read(topic, partition, to === undefined ? { from } : { from, to })) out.push(...batch);
    return out;
  };

  it('places keys where kafkajs’s default partitioner does, and reads kafkajs’s records back', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 'keys', partitions: 7 }]);
    const producer = await connected(raw.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    const keys = ['', 'a', 'dev-1', 'dev-2', 'ünïcødé', 'x'.repeat(40)];
    const ours = await log.append('keys', keys.map((key) => ({ key, value: bytes(key), headers: { h: key } })));
    for (const [i, key] of keys.entries()) {
      const [theirs] = await producer.send({ topic: `${prefix}keys`, messages: [{ key, value: key }] });
      expect(ours[i]?.partition).toBe(theirs?.partition);
      expect(ours[i]?.partition).toBe(partitionFor(key, 7));
    }
    const p = partitionFor('dev-1', 7);
    const records = await readAll(log, 'keys', p);
    expect(records.filter((r) => r.key === 'dev-1').map((r) => text(r.value))).toEqual(['dev-1', 'dev-1']);
    expect(records.find((r) => r.key === 'dev-1')?.headers).toEqual({ h: 'dev-1' });
  });

  it('answers concurrent appends (sent together) with the offsets their records landed at', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([{ name: 't', partitions: 3 }]);
    const calls = Array.from({ length: 60 }, (_, i) =>
      Array.from({ length: 1 + (i % 3) }, (_, j) => ({ key: `dev-${i % 7}`, value: bytes(`${i}.${j}`), ...(i % 5 === 0 ? { partition: 2 } : {}) })),
    );
    const results = await Promise.all(calls.map((records) => log.append('t', records)));
    const landed = new Map<string, string>();
    for (const p of [0, 1, 2]) for (const r of await readAll(log, 't', p)) landed.set(`${p}@${r.offset}`, text(r.value)!);
    expect(landed.size).toBe(calls.flat().length);
    results.forEach((where, i) =>
      where.forEach((w, j) => {
        expect(w.partition).toBe(i % 5 === 0 ? 2 : partitionFor(`dev-${i % 7}`, 3));
        expect(landed.get(`${w.partition}@${w.offset}`)).toBe(`${i}.${j}`);
      }),
    );
  });

  it('fences a zombie transaction: LOG_FENCED for the old writer, its records invisible to readers', async () => {
    const prefix = freshPrefix();
    const a = open(prefix);
    const b = open(prefix);
    await a.ensureTopics([
      { name: 'in', partitions: 1 },
      { name: 'out', partitions: 1 },
    ]);
    const fence = 'projector-g-0';
    await a.commitBatch({
      fence,
      appends: [{ topic: 'out', records: [{ key: 'k', value: bytes('a-1') }] }],
      offsets: [{ group: 'g', topic: 'in', partition: 0, offset: 1 }],
    });

    const zombie = await connected(
      raw.producer({ transactionalId: `${prefix}${fence}`, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner }),
    );
    const tx = await zombie.transaction();
    await tx.send({ topic: `${prefix}out`, messages: [{ key: 'k', value: 'zombie-1', partition: 0 }, { key: 'k', value: 'zombie-2', partition: 0 }] });
    await tx.sendOffsets({ consumerGroupId: `${prefix}g`, topics: [{ topic: `${prefix}in`, partitions: [{ partition: 0, offset: '9' }] }] });

    await b.commitBatch({ fence, appends: [] });
    await expect(tx.commit()).rejects.toThrow();
    const stale = await a.commitBatch({ fence, appends: [{ topic: 'out', records: [{ key: 'k', value: bytes('a-2') }] }] }).catch((e: unknown) => e);
    expect(isTwinlogError(stale, 'LOG_FENCED')).toBe(true);
    const again = await a.commitBatch({ fence, appends: [] }).catch((e: unknown) => e);
    expect(isTwinlogError(again, 'LOG_FENCED')).toBe(true);

    await b.commitBatch({
      fence,
      appends: [{ topic: 'out', records: [{ key: 'k', value: bytes('b-1') }] }],
      offsets: [{ group: 'g', topic: 'in', partition: 0, offset: 2 }],
    });
    const [end] = await b.endOffsets('out');
    const records = await readAll(b, 'out', 0);
    expect(records.map((r) => text(r.value))).toEqual(['a-1', 'b-1']);
    expect(end).toBeGreaterThan(records[1]!.offset + 1);
    expect(await b.committedOffsets('g', 'in')).toEqual([2]);
  });

  it('filters aborted transactions inside one fetch, several per producer', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 'out', partitions: 1 }]);
    const producer = await connected(
      raw.producer({ transactionalId: `${prefix}mixed`, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner }),
    );
    for (const [i, outcome] of (['abort', 'commit', 'abort', 'abort', 'commit'] as const).entries()) {
      const tx = await producer.transaction();
      await tx.send({ topic: `${prefix}out`, messages: [{ key: `k${i}`, value: `${outcome}-${i}`, partition: 0 }] });
      await (outcome === 'abort' ? tx.abort() : tx.commit());
    }
    await log.append('out', [{ key: 'plain', value: bytes('plain') }]);
    expect((await readAll(log, 'out', 0)).map((r) => text(r.value))).toEqual(['commit-1', 'commit-4', 'plain']);
    // one record per read batch cannot hide the walk either
    const small = open(prefix, { maxBytesPerPartition: 64 });
    expect((await readAll(small, 'out', 0)).map((r) => text(r.value))).toEqual(['commit-1', 'commit-4', 'plain']);
  });

  it('runs transactions back to back on one fence without tripping over the previous one', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([
      { name: 'in', partitions: 2 },
      { name: 'out', partitions: 2 },
    ]);
    for (let i = 1; i <= 15; i++) {
      await log.commitOffsets([{ group: 'g', topic: 'in', partition: i % 2, offset: i }]);
      await log.commitBatch({ fence: 'f', appends: [], offsets: [{ group: 'h', topic: 'in', partition: 0, offset: i }] });
      await log.commitBatch({ fence: 'f', appends: [{ topic: 'out', records: [{ key: `k${i}`, value: bytes(String(i)) }] }] });
    }
    expect(await log.committedOffsets('g', 'in')).toEqual([14, 15]);
    expect(await log.committedOffsets('h', 'in')).toEqual([15, undefined]);
    const values = [...(await readAll(log, 'out', 0)), ...(await readAll(log, 'out', 1))].map((r) => Number(text(r.value)));
    expect(values.sort((x, y) => x - y)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  });

  it('commits offsets of several partitions and groups in one transaction, each of them', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([
      { name: 'in', partitions: 4 },
      { name: 'out', partitions: 4 },
    ]);
    await log.commitBatch({
      fence: 'multi',
      appends: [{ topic: 'out', records: [0, 1, 2, 3].map((p) => ({ key: `k${p}`, value: bytes(String(p)), partition: p })) }],
      offsets: [
        ...[0, 1, 2, 3].map((partition) => ({ group: 'g1', topic: 'in', partition, offset: 10 + partition })),
        { group: 'g2', topic: 'in', partition: 2, offset: 7 },
      ],
    });
    expect(await log.committedOffsets('g1', 'in')).toEqual([10, 11, 12, 13]);
    expect(await log.committedOffsets('g2', 'in')).toEqual([undefined, undefined, 7, undefined]);
    expect(await log.endOffsets('out')).toEqual([2, 2, 2, 2]);
  });

  it('keeps fleets apart by topic prefix, and agrees with kafkajs on group offsets', async () => {
    const p1 = freshPrefix();
    const p2 = freshPrefix();
    const one = open(p1);
    const two = open(p2);
    await one.ensureTopics([{ name: 'twin.backend', partitions: 2 }]);
    await two.ensureTopics([{ name: 'twin.backend', partitions: 3 }]);
    expect(await one.partitionCount('twin.backend')).toBe(2);
    expect(await two.partitionCount('twin.backend')).toBe(3);
    await one.append('twin.backend', [{ key: 'dev-1', value: bytes('one') }]);
    expect(await two.endOffsets('twin.backend')).toEqual([0, 0, 0]);
    await one.commitOffsets([{ group: 'projector', topic: 'twin.backend', partition: 1, offset: 1 }]);
    expect(await one.committedOffsets('projector', 'twin.backend')).toEqual([undefined, 1]);
    expect(await two.committedOffsets('projector', 'twin.backend')).toEqual([undefined, undefined, undefined]);
    await one.commitBatch({ fence: 'f', appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('1') }] }] });
    await two.commitBatch({ fence: 'f', appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('2') }] }] });
    await one.commitBatch({ fence: 'f', appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('3') }] }] });
    const admin = await connected(raw.admin());
    const [fetched] = await admin.fetchOffsets({ groupId: `${p1}projector`, topics: [`${p1}twin.backend`] });
    expect(fetched?.partitions.find((p) => p.partition === 1)?.offset).toBe('1');
  });

  it('creates topics with append-time timestamps, compaction, retention and extra configs', async () => {
    const prefix = freshPrefix();
    const log = open(prefix, { topicConfig: (spec) => (spec.compacted === true ? { 'min.cleanable.dirty.ratio': '0.01' } : undefined) });
    await log.ensureTopics([
      { name: 'events', partitions: 2, retentionMs: 604_800_000, retentionBytes: 268_435_456 },
      { name: 'snapshots', partitions: 2, compacted: true },
    ]);
    const admin = await connected(raw.admin());
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: ['events', 'snapshots'].map((name) => ({
        type: ConfigResourceTypes.TOPIC,
        name: `${prefix}${name}`,
        configNames: ['message.timestamp.type', 'cleanup.policy', 'min.cleanable.dirty.ratio', 'retention.ms', 'retention.bytes'],
      })),
    });
    const config = (name: string): Record<string, string> =>
      Object.fromEntries(resources.find((r) => r.resourceName === `${prefix}${name}`)!.configEntries.map((e) => [e.configName, e.configValue]));
    expect(config('events')).toMatchObject({ 'message.timestamp.type': 'LogAppendTime', 'cleanup.policy': 'delete', 'retention.ms': '604800000', 'retention.bytes': '268435456' });
    expect(config('snapshots')).toMatchObject({ 'message.timestamp.type': 'LogAppendTime', 'cleanup.policy': 'compact', 'min.cleanable.dirty.ratio': '0.01' });
  });

  it('stamps records with the broker’s append time, not the producer’s clock', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const producer = await connected(raw.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    // a producer clock a day behind: on a LogAppendTime topic the broker's time wins
    const before = Date.now();
    await producer.send({ topic: `${prefix}t`, messages: [{ key: 'old', value: 'x', timestamp: String(before - 86_400_000) }] });
    const [record] = await readAll(log, 't', 0);
    expect(Math.abs(record!.timestamp - before)).toBeLessThan(60_000);
  });

  it('reads in several batches, can stop early, and waits for records up to an explicit `to`', async () => {
    const prefix = freshPrefix();
    const log = open(prefix, { maxBytesPerPartition: 256 });
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    for (let i = 0; i < 5; i++) await log.append('t', [0, 1, 2].map((j) => ({ key: `k${i}`, value: bytes(`v${i}-${j}`.padEnd(64, '.')) })));
    const batches: number[][] = [];
    for await (const batch of log.read('t', 0, { from: 2 })) batches.push(batch.map((r) => r.offset));
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flat()).toEqual(Array.from({ length: 13 }, (_, i) => i + 2));
    for await (const batch of log.read('t', 0, { from: 0 })) {
      expect(batch[0]?.offset).toBe(0);
      break;
    }
    const [end] = await log.endOffsets('t');
    const tail = (async () => {
      const seen: string[] = [];
      for await (const batch of log.read('t', 0, { from: end!, to: end! + 2 })) seen.push(...batch.map((r) => r.key));
      return seen;
    })();
    await log.append('t', [{ key: 'late-1', value: null }]);
    await log.append('t', [{ key: 'late-2', value: null }, { key: 'late-3', value: null }]);
    expect(await tail).toEqual(['late-1', 'late-2']);
  });

  it('fails a read still in progress when the log is closed, rather than end it quietly', async () => {
    const log = open(freshPrefix(), { maxBytesPerPartition: 256 });
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    for (let i = 0; i < 3; i++) await log.append('t', [0, 1, 2].map((j) => ({ key: `k${i}`, value: bytes(`${i}-${j}`.padEnd(64, '.')) })));
    const reading = log.read('t', 0, { from: 0 })[Symbol.asyncIterator]();
    expect((await reading.next()).done).toBe(false);
    await log.close();
    const error = await reading.next().catch((e: unknown) => e);
    expect(isTwinlogError(error, 'LOG_CLOSED')).toBe(true);
    expect(isTwinlogError(await log.endOffsets('t').catch((e: unknown) => e), 'LOG_CLOSED')).toBe(true);
  });

  it('ends a read whose range was deleted (log start past `to`) instead of waiting for it', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    await log.append('t', [0, 1, 2, 3, 4].map((i) => ({ key: `k${i}`, value: bytes(String(i)) })));
    const admin = await connected(raw.admin());
    await admin.fetchTopicOffsets(`${prefix}t`);
    await admin.deleteTopicRecords({ topic: `${prefix}t`, partitions: [{ partition: 0, offset: '4' }] });
    expect(await readAll(log, 't', 0, 0, 4)).toEqual([]);
    expect((await readAll(log, 't', 0)).map((r) => r.key)).toEqual(['k4']);
  });

  it('announces onRevoke before another member is given the partitions (co-partitioned)', async () => {
    const prefix = freshPrefix();
    const first = open(prefix);
    const second = open(prefix);
    await first.ensureTopics([
      { name: 'a', partitions: 4 },
      { name: 'b', partitions: 4 },
    ]);
    const owner = new Map<number, string>();
    const violations: string[] = [];
    const held = { m1: new Set<number>(), m2: new Set<number>() };
    const member = (name: 'm1' | 'm2') => ({
      group: 'g',
      topics: ['a', 'b'],
      onAssign: async (partitions: readonly number[]) => {
        for (const p of partitions) {
          const current = owner.get(p);
          if (current !== undefined) violations.push(`${name} got ${p} while ${current} held it`);
          owner.set(p, name);
          held[name].add(p);
        }
      },
      onRevoke: async (partitions: readonly number[]) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        for (const p of partitions) {
          if (owner.get(p) === name) owner.delete(p);
          held[name].delete(p);
        }
      },
      eachBatch: async ({ topic, partition }: { topic: string; partition: number }) => {
        if (!held[name].has(partition)) violations.push(`${name} got a batch of ${topic}[${partition}] it does not hold`);
      },
    });
    await first.append('a', Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, value: bytes('x') })));
    await first.append('b', Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, value: bytes('y') })));
    const s1 = await first.subscribe(member('m1'));
    expect([...held.m1].sort()).toEqual([0, 1, 2, 3]);
    await second.subscribe(member('m2'));
    await vi.waitFor(() => expect(held.m1.size === 2 && held.m2.size === 2).toBe(true), { timeout: 30_000, interval: 50 });
    expect([...held.m1, ...held.m2].sort()).toEqual([0, 1, 2, 3]);
    await s1.stop();
    expect(held.m1.size).toBe(0);
    await vi.waitFor(() => expect([...held.m2].sort()).toEqual([0, 1, 2, 3]), { timeout: 30_000, interval: 50 });
    expect(violations).toEqual([]);
  });

  it('a throwing eachBatch ends the subscription: done and stop() reject with its error', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([{ name: 't', partitions: 2 }]);
    await log.append('t', [{ key: 'k', value: null }]);
    let calls = 0;
    const sub = await log.subscribe({
      group: 'g',
      topics: ['t'],
      eachBatch: async () => {
        calls++;
        throw new Error('boom');
      },
    });
    await expect(sub.done).rejects.toThrow('boom');
    await expect(sub.stop()).rejects.toThrow('boom');
    await log.append('t', [{ key: 'k', value: null }]);
    expect(calls).toBe(1);
    expect(await log.committedOffsets('g', 't')).toEqual([undefined, undefined]);
  });

  it('hands batches of different partitions over at once with `concurrency`, never two of one partition', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([{ name: 't', partitions: 2 }]);
    await log.append('t', [
      { key: 'a', value: bytes('0'), partition: 0 },
      { key: 'b', value: bytes('1'), partition: 1 },
    ]);
    await expect(log.subscribe({ group: 'g0', topics: ['t'], concurrency: 0, eachBatch: async () => {} })).rejects.toMatchObject({ code: 'LOG_ARGUMENT_INVALID' });
    const started = new Map<number, () => void>();
    const startedOf = [0, 1].map((p) => new Promise<void>((resolve) => started.set(p, resolve)));
    const running = new Set<number>();
    let overlappedSelf = false;
    const sub = await log.subscribe({
      group: 'g',
      topics: ['t'],
      concurrency: 2,
      eachBatch: async ({ partition }) => {
        if (running.has(partition)) overlappedSelf = true;
        running.add(partition);
        started.get(partition)!();
        await Promise.race([startedOf[1 - partition], new Promise((_, reject) => setTimeout(() => reject(new Error('no overlap')), 20_000))]);
        running.delete(partition);
      },
    });
    await Promise.all(startedOf);
    await sub.stop();
    expect(overlappedSelf).toBe(false);
  });
});
