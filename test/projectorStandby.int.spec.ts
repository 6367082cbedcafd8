/**
 * A projector instance its group gave no partitions (more instances than partitions) is a healthy
 * standby, not a stalled stage; it takes the partition over when the instance holding it stops.
 */
import { randomUUID } from 'node:crypto';
import { createKafkaLog, type KafkaLog } from '@twinlog/log-kafka';
import { ensureTwinTopics, startProjector } from '@twinlog/projector';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';

const BROKERS = inject('kafkaBrokers');
const opened: KafkaLog[] = [];
afterAll(async () => {
  await Promise.allSettled(opened.map((l) => l.close()));
});

describe('projector standby', () => {
  it(
    'a second projector on a one-partition log is standby (healthy), then takes over',
    { timeout: 120_000 },
    async () => {
      const prefix = `tl-pstandby-${randomUUID().slice(0, 8)}.`;
      const open = (): KafkaLog => {
        const log = createKafkaLog({ brokers: BROKERS, topicPrefix: prefix });
        opened.push(log);
        return log;
      };
      const a = open();
      await ensureTwinTopics(a, 1);
      const first = await startProjector({ log: a, physicalNow: () => Date.now() });
      await vi.waitFor(() => expect(first.health().state).toBe('consuming'), { timeout: 30_000, interval: 200 });
      const second = await startProjector({ log: open(), physicalNow: () => Date.now() });
      const both = [first, second];
      try {
        // the group gives its one partition to either member; the other is a healthy standby
        await vi.waitFor(() => expect(both.map((p) => p.health().state).sort()).toEqual(['consuming', 'standby']), {
          timeout: 60_000,
          interval: 250,
        });
        const holder = both.find((p) => p.health().state === 'consuming')!;
        const standby = both.find((p) => p !== holder)!;
        expect(standby.partitions()).toEqual([]);
        await holder.stop();
        await vi.waitFor(() => expect(standby.health()).toMatchObject({ state: 'consuming', partitions: [0] }), {
          timeout: 60_000,
          interval: 250,
        });
      } finally {
        await Promise.all(both.map((p) => p.stop()));
      }
    },
  );
});
