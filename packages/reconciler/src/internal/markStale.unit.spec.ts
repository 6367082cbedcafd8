/** `markStale` is core `delta` at a later `now`, without the twin. */
import { applyEvent, createTwinState, delta, deltaKey, renderTwin, type DeltaInput } from '@twinlog/core';
import { eventsArb } from '@twinlog/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { instantMs, markStale } from './markStale.ts';

describe('markStale', () => {
  it('law: markStale(delta(twin, { now: t0 }), t1) ≡ delta(twin, { now: t1 }) for t1 ≥ t0', () => {
    fc.assert(
      fc.property(
        eventsArb({ withCreate: true, kinds: ['desired', 'reported'] }),
        fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 10 }),
        (events, t0, dt, staleAfterMs) => {
          const state = createTwinState('dev1');
          for (const e of events) applyEvent(state, e);
          const twin = renderTwin(state);
          const before = t0 === undefined ? delta(twin) : delta(twin, { now: t0, staleAfterMs });
          const t1 = (t0 ?? 0) + dt;
          const expected = delta(twin, { now: t1, staleAfterMs });
          const actual = markStale(before, t1, staleAfterMs);
          expect(deltaKey(actual)).toBe(deltaKey(expected));
          expect(actual).toEqual(expected);
        },
      ),
    );
  });

  it('turns acknowledged entries stale too, keeps the object when nothing changes', () => {
    const twin: DeltaInput = {
      deviceId: 'dev1',
      properties: {
        desired: {
          fw: '2',
          mode: 'eco',
          $metadata: { $lastUpdated: '2025-01-01T00:00:00Z', $lastUpdatedVersion: 3 },
          $version: 3,
        },
        reported: {
          fw: { value: '1', ac: 202, av: 3 },
          mode: 'eco',
          $metadata: { $lastUpdated: '2025-01-01T00:00:30Z' },
          $version: 5,
        },
      },
    };
    const t = Date.parse('2025-01-01T00:00:30Z');
    const d = delta(twin, { now: t, staleAfterMs: 60_000 });
    expect(d.entries.map((e) => e.status)).toEqual(['acknowledged', 'converged']);
    expect(markStale(d, t + 59_999, 60_000)).toBe(d);
    const stale = markStale(d, t + 60_000, 60_000);
    expect(stale.entries.map((e) => e.status)).toEqual(['stale', 'converged']);
    expect(stale).toEqual(delta(twin, { now: t + 60_000, staleAfterMs: 60_000 }));
  });

  it('reads times as core does: any fraction, no zone = UTC, offsets', () => {
    expect(instantMs('2025-01-01T00:00:00Z')).toBe(Date.UTC(2025, 0, 1));
    expect(instantMs('2025-01-01T00:00:00.1234567Z')).toBe(Date.UTC(2025, 0, 1) + 123);
    expect(instantMs('2025-01-01T00:00:00')).toBe(Date.UTC(2025, 0, 1));
    expect(instantMs('2025-01-01T01:00:00+0100')).toBe(Date.UTC(2025, 0, 1));
    expect(instantMs('0001-01-01T00:00:00Z')).toBe(-62_135_596_800_000); // IoT Hub's "never"
    expect(instantMs('soon')).toBeNaN();
  });
});
