/**
 * The @platformatic/kafka log against a real broker: the tests every Kafka adapter passes
 * (`runKafkaLogSpecs` of `@twinlog/log-kafka/testing`: core's `Log` acceptance suite, fencing,
 * prefix isolation, topic configs, reads by position, rebalance announcements), then what this
 * adapter does its own way and so is checked here: partitions and records against kafkajs's,
 * appends sent together, aborted transactions filtered from raw record batches, offsets of many
 * partitions in one transaction, and the broker's append time on records. Checks go through
 * kafkajs, an independent client, so the adapter is not judged by its own library.
 */
import { partitionFor } from '@twinlog/core';
import { bytes, kafkaLogFixture, runKafkaLogSpecs, text } from '@twinlog/log-kafka/testing';
import { Partitioners } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { createPlatformaticKafkaLog } from './index.ts';

const BROKERS = inject('kafkaBrokers');

runKafkaLogSpecs('kafka (platformatic)', BROKERS, 'tlp', createPlatformaticKafkaLog);

describe('Kafka log on @platformatic/kafka', () => {
  const { raw, freshPrefix, open, connected, readAll } = kafkaLogFixture(
    BROKERS,
    'tlp-own',
    createPlatformaticKafkaLog,
  );

  it('places keys where kafkajs’s default partitioner does, and reads kafkajs’s records back', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 'keys', partitions: 7 }]);
    const producer = await connected(raw.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    const keys = ['', 'a', 'dev-1', 'dev-2', 'ünïcødé', 'x'.repeat(40)];
    const ours = await log.append(
      'keys',
      keys.map((key) => ({ key, value: bytes(key), headers: { h: key } })),
    );
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
      Array.from({ length: 1 + (i % 3) }, (_, j) => ({
        key: `dev-${i % 7}`,
        value: bytes(`${i}.${j}`),
        ...(i % 5 === 0 ? { partition: 2 } : {}),
      })),
    );
    const results = await Promise.all(calls.map((records) => log.append('t', records)));
    const landed = new Map<string, string>();
    for (const p of [0, 1, 2])
      for (const r of await readAll(log, 't', p)) landed.set(`${p}@${r.offset}`, text(r.value)!);
    expect(landed.size).toBe(calls.flat().length);
    results.forEach((where, i) =>
      where.forEach((w, j) => {
        expect(w.partition).toBe(i % 5 === 0 ? 2 : partitionFor(`dev-${i % 7}`, 3));
        expect(landed.get(`${w.partition}@${w.offset}`)).toBe(`${i}.${j}`);
      }),
    );
  });

  it('filters aborted transactions inside one fetch, several per producer', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 'out', partitions: 1 }]);
    const producer = await connected(
      raw.producer({
        transactionalId: `${prefix}mixed`,
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      }),
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

  it('commits offsets of several partitions and groups in one transaction, each of them', async () => {
    const log = open(freshPrefix());
    await log.ensureTopics([
      { name: 'in', partitions: 4 },
      { name: 'out', partitions: 4 },
    ]);
    await log.commitBatch({
      fence: 'multi',
      appends: [
        { topic: 'out', records: [0, 1, 2, 3].map((p) => ({ key: `k${p}`, value: bytes(String(p)), partition: p })) },
      ],
      offsets: [
        ...[0, 1, 2, 3].map((partition) => ({ group: 'g1', topic: 'in', partition, offset: 10 + partition })),
        { group: 'g2', topic: 'in', partition: 2, offset: 7 },
      ],
    });
    expect(await log.committedOffsets('g1', 'in')).toEqual([10, 11, 12, 13]);
    expect(await log.committedOffsets('g2', 'in')).toEqual([undefined, undefined, 7, undefined]);
    expect(await log.endOffsets('out')).toEqual([2, 2, 2, 2]);
  });

  it('stamps records with the broker’s append time, not the producer’s clock', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const producer = await connected(raw.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    // a producer clock a day behind: on a LogAppendTime topic the broker's time wins
    const before = Date.now();
    await producer.send({
      topic: `${prefix}t`,
      messages: [{ key: 'old', value: 'x', timestamp: String(before - 86_400_000) }],
    });
    const [record] = await readAll(log, 't', 0);
    expect(Math.abs(record!.timestamp - before)).toBeLessThan(60_000);
  });
});
