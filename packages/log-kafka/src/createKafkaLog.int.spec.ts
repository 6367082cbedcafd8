/**
 * The Kafka log against a real broker (the `int` project's global setup provides it): the tests
 * every Kafka adapter passes (`runKafkaLogSpecs`: core's `Log` acceptance suite, fencing, prefix
 * isolation, reads by position, rebalance announcements), then what is the kafkajs adapter's own:
 * agreement with kafkajs's default partitioner over arbitrary keys.
 */
import { partitionFor } from '@twinlog/core';
import fc from 'fast-check';
import { Partitioners } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { createKafkaLog } from './index.ts';
import { kafkaLogFixture, runKafkaLogSpecs } from './testing/index.ts';

const BROKERS = inject('kafkaBrokers');

runKafkaLogSpecs('kafka', BROKERS, 'tl', createKafkaLog);

describe('Kafka log (kafkajs)', () => {
  const { raw, freshPrefix, open, connected } = kafkaLogFixture(BROKERS, 'tl-own', createKafkaLog);

  it('places every key on the partition kafkajs’s default partitioner picks (property)', async () => {
    const prefix = freshPrefix();
    const log = open(prefix);
    await log.ensureTopics([{ name: 'keys', partitions: 7 }]);
    const producer = await connected(raw.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ unit: 'binary', maxLength: 24 }), { minLength: 1, maxLength: 12 }),
        async (keys) => {
          const ours = await log.append(
            'keys',
            keys.map((key) => ({ key, value: null })),
          );
          for (const [i, key] of keys.entries()) {
            const [theirs] = await producer.send({ topic: `${prefix}keys`, messages: [{ key, value: null }] });
            expect(ours[i]?.partition).toBe(theirs?.partition);
            expect(ours[i]?.partition).toBe(partitionFor(key, 7));
          }
        },
      ),
      { numRuns: 6 },
    );
  });
});
