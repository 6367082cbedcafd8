import { defineConfig } from 'vitest/config';

// Tiers by file name (STYLE.md §14): *.unit.spec.ts are pure, *.int.spec.ts need a real broker or
// SQLite, *.e2e.spec.ts run processes and real SDK clients.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.unit.spec.ts', 'test/**/*.unit.spec.ts'],
        },
      },
    ],
  },
});
