/**
 * The projector on the @platformatic/kafka log, on a real broker: writes through the client
 * library come back as the twin, and a projector that dies without stopping (its log closed under
 * it, as a killed process leaves it) is taken over by a new one that loses and repeats nothing.
 */
import { createTwinClient, sectionOf, type TwinClient } from '@twinlog/client';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { kafkaTestRun } from '@twinlog/log-kafka/testing';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createPlatformaticKafkaLog, type PlatformaticKafkaLog } from './index.ts';

const BROKERS = inject('kafkaBrokers');
const { run: RUN } = kafkaTestRun(BROKERS, 'tlp-proj');

describe('projector on the @platformatic/kafka log', () => {
  const logs: PlatformaticKafkaLog[] = [];
  const projectors: Projector[] = [];
  const clients: TwinClient[] = [];
  let n = 0;
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    await Promise.allSettled(projectors.splice(0).map((p) => p.stop()));
    await Promise.allSettled(logs.splice(0).map((l) => l.close()));
  });
  const openLog = (prefix: string): PlatformaticKafkaLog => {
    const log = createPlatformaticKafkaLog({ brokers: BROKERS, topicPrefix: prefix });
    logs.push(log);
    return log;
  };
  const project = async (log: PlatformaticKafkaLog): Promise<Projector> => {
    const p = await startProjector({ log, physicalNow: () => Date.now() });
    projectors.push(p);
    return p;
  };
  const clientOn = (log: PlatformaticKafkaLog): TwinClient => {
    const c = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'int-test', pollIntervalMs: 20 });
    clients.push(c);
    return c;
  };

  it('folds writes made with the client and reads the twin back', { timeout: 120_000 }, async () => {
    const prefix = `${RUN}.${++n}.`;
    const log = openLog(prefix);
    await ensureTwinTopics(log, 4);
    const projector = await project(log);
    const client = clientOn(log);
    expect(await client.createDevice('dev1', { wait: true })).toMatchObject({ accepted: true });
    await client.mergeDesired('dev1', { fw: '1.0', net: { ssid: 'a' } }, { wait: true });
    await client.mergeReported('dev1', { fw: '0.9' }, { wait: true });
    const twin = await client.getTwin('dev1');
    expect(sectionOf(twin, 'desired')).toEqual({ fw: '1.0', net: { ssid: 'a' } });
    expect(sectionOf(twin, 'reported')).toEqual({ fw: '0.9' });
    const stale = await client.mergeDesired('dev1', { fw: '6.6' }, { ifMatch: '"not-the-etag"' });
    expect(stale).toMatchObject({ accepted: false });
    expect(projector.health().state).toBe('consuming');
    expect(projector.partitions()).toEqual([0, 1, 2, 3]);
  });

  it('a projector that dies mid-run is taken over by a new one: nothing lost', { timeout: 180_000 }, async () => {
    const prefix = `${RUN}.${++n}.`;
    const first = openLog(prefix);
    await ensureTwinTopics(first, 4);
    await project(first);
    const writerLog = openLog(prefix);
    const client = clientOn(writerLog);
    const devices = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'];
    for (const d of devices) await client.createDevice(d, { wait: true });
    for (const d of devices) await client.mergeDesired(d, { step: 1 }, { wait: true });

    // the first projector's process dies: its Kafka clients go away without leaving the group cleanly
    await first.close();
    // writes made while nobody projects them
    const pending = devices.map((d) => client.mergeDesired(d, { step: 2, [`k-${d}`]: true }));
    await Promise.all(pending);

    const second = openLog(prefix);
    await project(second);
    for (const d of devices) {
      await vi.waitFor(
        async () => {
          const twin = await client.getTwin(d);
          expect(sectionOf(twin, 'desired')).toEqual({ step: 2, [`k-${d}`]: true });
        },
        { timeout: 90_000, interval: 200 },
      );
    }
    // the devices went through the same commands: their versions agree
    const twins = await Promise.all(devices.map((d) => client.getTwin(d)));
    const versions = twins.map((t) => t.version);
    expect(new Set(versions).size).toBe(1);
    const ends = await second.endOffsets(TOPICS.backend);
    expect(ends.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});
