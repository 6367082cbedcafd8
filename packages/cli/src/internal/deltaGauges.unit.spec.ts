import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDeltaGauges, type DeltaSummary } from './deltaGauges.ts';

const STATUSES = ['pending', 'acknowledged', 'rejected', 'converged', 'stale'] as const;

describe('createDeltaGauges', () => {
  it('always equals the totals recomputed from each device’s latest delta', () => {
    const summary = fc.record({
      counts: fc.record(
        Object.fromEntries(STATUSES.map((s) => [s, fc.nat(20)])) as Record<
          (typeof STATUSES)[number],
          fc.Arbitrary<number>
        >,
      ),
      converged: fc.boolean(),
    });
    const update = fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.option(summary, { nil: undefined }));
    fc.assert(
      fc.property(fc.array(update, { maxLength: 60 }), (updates) => {
        const gauges = new Map<string, number>();
        const g = createDeltaGauges({
          set: (name, labels, value) => void gauges.set(`${name}${JSON.stringify(labels)}`, value),
        });
        const latest = new Map<string, DeltaSummary>();
        for (const [id, d] of updates) {
          g.set(id, d);
          if (d === undefined) latest.delete(id);
          else latest.set(id, d);
        }
        for (const s of STATUSES) {
          const expected = [...latest.values()].reduce((n, d) => n + (d.counts[s] ?? 0), 0);
          expect(gauges.get(`twinlog_delta_entries{"status":"${s}"}`)).toBe(expected);
        }
        const converged = [...latest.values()].filter((d) => d.converged).length;
        expect(gauges.get('twinlog_delta_devices{"converged":"true"}')).toBe(converged);
        expect(gauges.get('twinlog_delta_devices{"converged":"false"}')).toBe(latest.size - converged);
        expect(g.devices).toBe(latest.size);
      }),
      { numRuns: 300 },
    );
  });
});
