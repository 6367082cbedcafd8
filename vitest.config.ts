import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Tests run the TypeScript sources, not dist/: the packages resolve each other through the `source`
// export condition (`./src/*.ts`) ahead of the built `types`/`default` ones (CONTRIBUTING.md,
// "Building"). Vitest runs tests as server-side modules, hence ssr.resolve too.
const SOURCE = 'source';

// Tiers by file name (CONTRIBUTING.md, "Naming and test placement"): *.unit.spec.ts are pure,
// *.int.spec.ts need a real broker or SQLite, *.e2e.spec.ts run processes and real SDK clients.
export default defineConfig({
  resolve: { conditions: [SOURCE, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE, ...defaultServerConditions] } },
  test: {
    reporters: ['default', './test/summaryReporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.unit.spec.ts', 'test/**/*.unit.spec.ts'],
          // property suites run thousands of cases; on a loaded 2-core machine 5 s is too tight
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
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
