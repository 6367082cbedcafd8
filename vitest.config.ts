import { defineConfig } from 'vitest/config';

// Tiers by file name (CONTRIBUTING.md, "Naming and test placement"): *.unit.spec.ts are pure,
// *.int.spec.ts need a real broker or SQLite, *.e2e.spec.ts run processes and real SDK clients.
export default defineConfig({
  test: {
    reporters: ['default', './test/summaryReporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.unit.spec.ts', 'test/**/*.unit.spec.ts'],
          // property suites run thousands of cases; on a loaded 2-core machine 5 s is too tight
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'int',
          include: ['packages/*/src/**/*.int.spec.ts', 'test/**/*.int.spec.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // One Kafka broker for the run: KAFKA_BROKERS, testcontainers or docker/kafka-local.sh.
          globalSetup: ['test/kafkaGlobalSetup.ts'],
        },
      },
    ],
  },
});
