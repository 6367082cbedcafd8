import { encodeOutputRecord } from '@twinlog/codec';
import { delta, type LogRecord } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
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

  it('takes deltas and tombstones from records; skips the reconciler’s checkpoint and undecodable ones', () => {
    const gauges = new Map<string, number>();
    const g = createDeltaGauges({
      set: (name, labels, value) => void gauges.set(`${name}${JSON.stringify(labels)}`, value),
    });
    const d = delta({ deviceId: 'a', properties: { desired: { x: 1, $version: 2 }, reported: { $version: 1 } } });
    const source = { topic: TOPICS.snapshots, partition: 0, offset: 0 };
    const record = (key: string, value: Uint8Array | null, headers: Record<string, string> = {}): LogRecord => ({
      topic: TOPICS.deltas,
      partition: 0,
      offset: 0,
      key,
      value,
      timestamp: 0,
      headers,
    });
    g.record(record('a', encodeOutputRecord({ kind: 'delta', v: 1, deviceId: 'a', delta: d, source })));
    g.record(record(CHECKPOINT_KEY, Uint8Array.of(0xc0), { 'twinlog-snapshots-position': '1', 'twinlog-group': 'g' }));
    g.record(record('b', Uint8Array.of(0xc1)));
    expect(g.devices).toBe(1);
    expect(gauges.get('twinlog_delta_entries{"status":"pending"}')).toBe(1);
    g.record(record('a', null));
    expect(g.devices).toBe(0);
  });
});
