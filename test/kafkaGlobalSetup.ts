/**
 * Global setup of the `int` project: one Kafka broker for the whole run (see `kafkaBroker.ts` for
 * how it is chosen), provided to tests as `inject('kafkaBrokers')` and to test workers and the
 * processes they spawn as `KAFKA_BROKERS`. The teardown stops whatever the setup started.
 */
import type { TestProject } from 'vitest/node';
import { startKafkaBroker } from './kafkaBroker.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const broker = await startKafkaBroker();
  process.env['KAFKA_BROKERS'] = broker.brokers;
  project.provide('kafkaBrokers', broker.brokers);
  if (broker.source !== 'KAFKA_BROKERS') console.error(`[int] Kafka at ${broker.brokers} (${broker.source})`);
  return async () => {
    await broker.stop();
  };
}
