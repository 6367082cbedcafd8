/**
 * The integration tests every Kafka adapter of the `Log` port passes, on a real broker: core's
 * `Log` acceptance suite, then what Kafka adds to it: fencing of a zombie transaction,
 * back-to-back transactions on one fence, topic prefix isolation, topic configs on creation,
 * reads that stop by position, and the subscription's rebalance announcements. The zombie, the
 * configs and the group offsets are checked with kafkajs, an independent client.
 *
 * An adapter's spec file calls {@link runKafkaLogSpecs} with its factory and adds the tests of
 * what is its own.
 */
import { isTwinlogError } from '@twinlog/core';
import { runLogAcceptanceSuite } from '@twinlog/core/testing';
import { ConfigResourceTypes, Partitioners } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { bytes, kafkaLogFixture, kafkaTestRun, text, type OpenKafkaLog, type StatusLog } from './kafkaTestRun.ts';

/**
 * Runs core's acceptance suite (`Log acceptance: <name>`) and the Kafka tests (`Kafka log (<name>)`)
 * against the adapter `open` creates. `runPrefix` starts every topic, group and transactional id
 * of the run (the topics are deleted afterwards).
 */
export function runKafkaLogSpecs<L extends StatusLog>(
  name: string,
  brokers: string,
  runPrefix: string,
  open: OpenKafkaLog<L>,
): void {
  const acceptance = kafkaTestRun(brokers, `${runPrefix}-acc`);
  runLogAcceptanceSuite(name, async () => ({
    log: open({ brokers, topicPrefix: `${acceptance.run}.` }),
    now: () => Date.now(),
  }));

  describe(`Kafka log (${name})`, () => {
    const { raw, freshPrefix, open: openLog, connected, readAll } = kafkaLogFixture(brokers, runPrefix, open);
    it('fences a zombie transaction: LOG_FENCED for the old writer, its records invisible to readers', async () => {
      const prefix = freshPrefix();
      const a = openLog(prefix);
      const b = openLog(prefix);
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

      // A zombie of the same fence, stuck in the middle of a transaction: its records are written
      // but not committed. Initialising it fences `a`.
      const zombie = await connected(
        raw.producer({
          transactionalId: `${prefix}${fence}`,
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        }),
      );
      const tx = await zombie.transaction();
      await tx.send({
        topic: `${prefix}out`,
        messages: [
          { key: 'k', value: 'zombie-1', partition: 0 },
          { key: 'k', value: 'zombie-2', partition: 0 },
        ],
      });
      await tx.sendOffsets({
        consumerGroupId: `${prefix}g`,
        topics: [{ topic: `${prefix}in`, partitions: [{ partition: 0, offset: '9' }] }],
      });

      // `b` claims the fence (an empty batch writes nothing): the zombie's transaction is aborted.
      await b.commitBatch({ fence, appends: [] });
      await expect(tx.commit()).rejects.toThrow();
      const stale = await a
        .commitBatch({ fence, appends: [{ topic: 'out', records: [{ key: 'k', value: bytes('a-2') }] }] })
        .catch((e: unknown) => e);
      expect(isTwinlogError(stale, 'LOG_FENCED')).toBe(true);
      // A fence once lost stays lost to that client.
      const again = await a.commitBatch({ fence, appends: [] }).catch((e: unknown) => e);
      expect(isTwinlogError(again, 'LOG_FENCED')).toBe(true);

      await b.commitBatch({
        fence,
        appends: [{ topic: 'out', records: [{ key: 'k', value: bytes('b-1') }] }],
        offsets: [{ group: 'g', topic: 'in', partition: 0, offset: 2 }],
      });
      // read_committed: the aborted records and every marker take offsets, yet the read ends.
      const [end] = await b.endOffsets('out');
      const records = await readAll(b, 'out', 0);
      expect(records.map((r) => text(r.value))).toEqual(['a-1', 'b-1']);
      expect(end).toBeGreaterThan(records[1]!.offset + 1);
      expect(await b.committedOffsets('g', 'in')).toEqual([2]);
    });

    it('runs transactions back to back on one fence without tripping over the previous one', async () => {
      const log = openLog(freshPrefix());
      await log.ensureTopics([
        { name: 'in', partitions: 2 },
        { name: 'out', partitions: 2 },
      ]);
      for (let i = 1; i <= 15; i++) {
        await log.commitOffsets([{ group: 'g', topic: 'in', partition: i % 2, offset: i }]);
        await log.commitBatch({
          fence: 'f',
          appends: [],
          offsets: [{ group: 'h', topic: 'in', partition: 0, offset: i }],
        });
        await log.commitBatch({
          fence: 'f',
          appends: [{ topic: 'out', records: [{ key: `k${i}`, value: bytes(String(i)) }] }],
        });
      }
      expect(await log.committedOffsets('g', 'in')).toEqual([14, 15]);
      expect(await log.committedOffsets('h', 'in')).toEqual([15, undefined]);
      const values = [...(await readAll(log, 'out', 0)), ...(await readAll(log, 'out', 1))].map((r) =>
        Number(text(r.value)),
      );
      expect(values.sort((x, y) => x - y)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    });

    it('keeps fleets apart by topic prefix: topics, groups and fences', async () => {
      const p1 = freshPrefix();
      const p2 = freshPrefix();
      const one = openLog(p1);
      const two = openLog(p2);
      await one.ensureTopics([{ name: 'twin.backend', partitions: 2 }]);
      await two.ensureTopics([{ name: 'twin.backend', partitions: 3 }]);
      expect(await one.partitionCount('twin.backend')).toBe(2);
      expect(await two.partitionCount('twin.backend')).toBe(3);

      await one.append('twin.backend', [{ key: 'dev-1', value: bytes('one') }]);
      expect(await two.endOffsets('twin.backend')).toEqual([0, 0, 0]);

      await one.commitOffsets([{ group: 'projector', topic: 'twin.backend', partition: 1, offset: 1 }]);
      expect(await one.committedOffsets('projector', 'twin.backend')).toEqual([undefined, 1]);
      expect(await two.committedOffsets('projector', 'twin.backend')).toEqual([undefined, undefined, undefined]);

      // The same fence id in two fleets is two transactional ids: neither fences the other.
      await one.commitBatch({
        fence: 'f',
        appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('1') }] }],
      });
      await two.commitBatch({
        fence: 'f',
        appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('2') }] }],
      });
      await one.commitBatch({
        fence: 'f',
        appends: [{ topic: 'twin.backend', records: [{ key: 'a', value: bytes('3') }] }],
      });

      const admin = await connected(raw.admin());
      const topics = await admin.listTopics();
      expect(topics).toContain(`${p1}twin.backend`);
      expect(topics).toContain(`${p2}twin.backend`);
      const [fetched] = await admin.fetchOffsets({ groupId: `${p1}projector`, topics: [`${p1}twin.backend`] });
      expect(fetched?.partitions.find((p) => p.partition === 1)?.offset).toBe('1');
    });

    it('creates topics with append-time timestamps, compaction, retention and extra configs', async () => {
      const prefix = freshPrefix();
      const log = openLog(prefix, {
        topicConfig: (spec) => (spec.compacted === true ? { 'min.cleanable.dirty.ratio': '0.01' } : undefined),
      });
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
          configNames: [
            'message.timestamp.type',
            'cleanup.policy',
            'min.cleanable.dirty.ratio',
            'retention.ms',
            'retention.bytes',
          ],
        })),
      });
      const config = (name: string): Record<string, string> =>
        Object.fromEntries(
          resources
            .find((r) => r.resourceName === `${prefix}${name}`)!
            .configEntries.map((e) => [e.configName, e.configValue]),
        );
      expect(config('events')).toMatchObject({
        'message.timestamp.type': 'LogAppendTime',
        'cleanup.policy': 'delete',
        'retention.ms': '604800000',
        'retention.bytes': '268435456',
      });
      expect(config('snapshots')).toMatchObject({
        'message.timestamp.type': 'LogAppendTime',
        'cleanup.policy': 'compact',
        'min.cleanable.dirty.ratio': '0.01',
      });
    });

    it('reads in several batches, can stop early, and waits for records up to an explicit `to`', async () => {
      const prefix = freshPrefix();
      const log = openLog(prefix, { maxBytesPerPartition: 256 });
      await log.ensureTopics([{ name: 't', partitions: 1 }]);
      for (let i = 0; i < 5; i++)
        await log.append(
          't',
          [0, 1, 2].map((j) => ({ key: `k${i}`, value: bytes(`v${i}-${j}`.padEnd(64, '.')) })),
        );

      const batches: number[][] = [];
      for await (const batch of log.read('t', 0, { from: 2 })) batches.push(batch.map((r) => r.offset));
      expect(batches.length).toBeGreaterThan(1);
      expect(batches.flat()).toEqual(Array.from({ length: 13 }, (_, i) => i + 2));

      for await (const batch of log.read('t', 0, { from: 0 })) {
        expect(batch[0]?.offset).toBe(0);
        break; // the reader's consumer is released
      }

      const [end] = await log.endOffsets('t');
      const tail = (async () => {
        const seen: string[] = [];
        for await (const batch of log.read('t', 0, { from: end!, to: end! + 2 })) seen.push(...batch.map((r) => r.key));
        return seen;
      })();
      await log.append('t', [{ key: 'late-1', value: null }]);
      await log.append('t', [
        { key: 'late-2', value: null },
        { key: 'late-3', value: null },
      ]);
      expect(await tail).toEqual(['late-1', 'late-2']);
    });

    it('fails a read still in progress when the log is closed, rather than end it quietly', async () => {
      const log = openLog(freshPrefix(), { maxBytesPerPartition: 256 });
      await log.ensureTopics([{ name: 't', partitions: 1 }]);
      for (let i = 0; i < 3; i++)
        await log.append(
          't',
          [0, 1, 2].map((j) => ({ key: `k${i}`, value: bytes(`${i}-${j}`.padEnd(64, '.')) })),
        );
      const reading = log.read('t', 0, { from: 0 })[Symbol.asyncIterator]();
      expect((await reading.next()).done).toBe(false);
      await log.close();
      const error = await reading.next().catch((e: unknown) => e);
      expect(isTwinlogError(error, 'LOG_CLOSED')).toBe(true);
      expect(isTwinlogError(await log.endOffsets('t').catch((e: unknown) => e), 'LOG_CLOSED')).toBe(true);
    });

    it('ends a read whose range was deleted (log start past `to`) instead of waiting for it', async () => {
      const prefix = freshPrefix();
      const log = openLog(prefix);
      await log.ensureTopics([{ name: 't', partitions: 1 }]);
      await log.append(
        't',
        [0, 1, 2, 3, 4].map((i) => ({ key: `k${i}`, value: bytes(String(i)) })),
      );
      const admin = await connected(raw.admin());
      await admin.fetchTopicOffsets(`${prefix}t`); // loads the topic's metadata into this admin
      await admin.deleteTopicRecords({ topic: `${prefix}t`, partitions: [{ partition: 0, offset: '4' }] });
      expect(await readAll(log, 't', 0, 0, 4)).toEqual([]);
      expect((await readAll(log, 't', 0, 0)).map((r) => r.key)).toEqual(['k4']);
    });

    it('announces onRevoke before another member is given the partitions (co-partitioned)', async () => {
      const prefix = freshPrefix();
      const first = openLog(prefix);
      const second = openLog(prefix);
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
          // Give a wrong order the time to show.
          await new Promise((resolve) => setTimeout(resolve, 50));
          for (const p of partitions) {
            if (owner.get(p) === name) owner.delete(p);
            held[name].delete(p);
          }
        },
        eachBatch: async ({ topic, partition }: { topic: string; partition: number }) => {
          if (!held[name].has(partition))
            violations.push(`${name} got a batch of ${topic}[${partition}] it does not hold`);
        },
      });
      await first.append(
        'a',
        Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, value: bytes('x') })),
      );
      await first.append(
        'b',
        Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, value: bytes('y') })),
      );
      const s1 = await first.subscribe(member('m1'));
      expect([...held.m1].sort()).toEqual([0, 1, 2, 3]);
      await second.subscribe(member('m2'));
      await vi.waitFor(() => expect(held.m1.size === 2 && held.m2.size === 2).toBe(true), {
        timeout: 30_000,
        interval: 50,
      });
      expect([...held.m1, ...held.m2].sort()).toEqual([0, 1, 2, 3]);
      await s1.stop();
      expect(held.m1.size).toBe(0);
      await vi.waitFor(() => expect([...held.m2].sort()).toEqual([0, 1, 2, 3]), { timeout: 30_000, interval: 50 });
      expect(violations).toEqual([]);
    });

    it('a throwing eachBatch ends the subscription: done and stop() reject with its error', async () => {
      const prefix = freshPrefix();
      const log = openLog(prefix);
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
      const prefix = freshPrefix();
      const log = openLog(prefix);
      await log.ensureTopics([{ name: 't', partitions: 2 }]);
      await log.append('t', [
        { key: 'a', value: bytes('0'), partition: 0 },
        { key: 'b', value: bytes('1'), partition: 1 },
      ]);
      await expect(
        log.subscribe({ group: 'g0', topics: ['t'], concurrency: 0, eachBatch: async () => {} }),
      ).rejects.toMatchObject({
        code: 'LOG_ARGUMENT_INVALID',
      });
      // Each partition's first batch waits for the other's to start: only overlapping batches get through.
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
          await Promise.race([
            startedOf[1 - partition],
            new Promise((_, reject) => setTimeout(() => reject(new Error('no overlap')), 20_000)),
          ]);
          running.delete(partition);
        },
      });
      await Promise.all(startedOf);
      await sub.stop();
      expect(overlappedSelf).toBe(false);
    });
  });
}
