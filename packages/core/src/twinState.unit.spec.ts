import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TwinEvent } from './event.ts';
import { canonicalJson } from './json.ts';
import { renderTwin, sectionMetadata, sectionView } from './renderTwin.ts';
import { cloneTwinState, fromStateDoc, toStateDoc } from './stateDoc.ts';
import { deliveryArb, eventsArb, sequentialOracle } from './testing/index.ts';
import {
  applyEvent,
  collectGarbage,
  createTwinState,
  joinTwinStates,
  sectionVersion,
  twinExists,
  type TwinState,
} from './twinState.ts';

const RUNS = { numRuns: 2000 };

function fold(events: readonly TwinEvent[]): TwinState {
  const s = createTwinState('dev1');
  for (const e of events) applyEvent(s, e);
  return s;
}
const snapshot = (s: TwinState): string => canonicalJson(renderTwin(s));
const stripRoot = (meta: Record<string, unknown>): Record<string, unknown> => {
  const { $lastUpdated: _u, $lastUpdatedVersion: _v, ...rest } = meta;
  return rest;
};

describe('fold laws (docs/fold.md)', () => {
  it('S1: any order with duplicates gives byte-identical canonical snapshots and state documents', () => {
    fc.assert(
      fc.property(
        eventsArb().chain((events) => fc.tuple(fc.constant(events), deliveryArb(events))),
        ([events, delivery]) => {
          const a = fold(events);
          const b = fold(delivery);
          expect(snapshot(b)).toBe(snapshot(a));
          expect(canonicalJson(toStateDoc(b))).toBe(canonicalJson(toStateDoc(a)));
        },
      ),
      RUNS,
    );
  });

  it('S2: every section equals the sequential oracle (view, versions, metadata, ranks)', () => {
    fc.assert(
      fc.property(
        eventsArb().chain((events) => deliveryArb(events)),
        (delivery) => {
          const s = fold(delivery);
          const oracle = sequentialOracle(delivery);
          expect(twinExists(s)).toBe(oracle.exists);
          for (const section of ['tags', 'desired', 'reported'] as const) {
            expect(sectionView(s, section)).toEqual(oracle.sections[section].view);
            expect(sectionVersion(s, section)).toBe(oracle.sections[section].version);
            if (section !== 'tags') {
              expect(stripRoot(sectionMetadata(s, section))).toEqual(oracle.sections[section].metadata);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it('S3: join is commutative, associative, idempotent, and fold(X) ⊔ fold(Y) = fold(X ∪ Y)', () => {
    fc.assert(
      fc.property(
        eventsArb().chain((events) =>
          fc.tuple(fc.constant(events), fc.subarray(events), fc.subarray(events), fc.subarray(events)),
        ),
        ([all, x, y, z]) => {
          const join = (a: TwinState, b: TwinState): TwinState => joinTwinStates(cloneTwinState(a), b);
          const [fx, fy, fz] = [fold(x), fold(y), fold(z)];
          expect(snapshot(join(fx, fy))).toBe(snapshot(join(fy, fx)));
          expect(snapshot(join(join(fx, fy), fz))).toBe(snapshot(join(fx, join(fy, fz))));
          expect(snapshot(join(fx, fx))).toBe(snapshot(fx));
          expect(snapshot(join(fx, fy))).toBe(snapshot(fold([...x, ...y])));
          expect(canonicalJson(toStateDoc(join(fx, fy)))).toBe(canonicalJson(toStateDoc(fold([...x, ...y]))));
          expect(snapshot(join(fold(all), fx))).toBe(snapshot(fold(all)));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('S4: a joined or restored state folds later events like one that saw everything (the top-of-section fast path)', () => {
    fc.assert(
      fc.property(
        eventsArb().chain((events) =>
          fc.tuple(fc.constant(events), fc.subarray(events), fc.subarray(events), deliveryArb(events)),
        ),
        ([all, x, y, later]) => {
          const joined = joinTwinStates(fold(x), fold(y));
          const restored = fromStateDoc(toStateDoc(fold(x)));
          for (const e of later) {
            applyEvent(joined, e);
            applyEvent(restored, e);
          }
          const expected = fold(all);
          expect(canonicalJson(toStateDoc(joined))).toBe(canonicalJson(toStateDoc(expected)));
          expect(canonicalJson(toStateDoc(restored))).toBe(canonicalJson(toStateDoc(expected)));
          expect(snapshot(restored)).toBe(snapshot(expected));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('S5: G1 at random points preserves the view; G1+G2 then only later events equals the full fold', () => {
    fc.assert(
      fc.property(
        eventsArb({ maxLength: 30 }).chain((events) =>
          fc.tuple(fc.constant(events), deliveryArb(events), fc.nat({ max: 30 }), fc.integer({ min: 0, max: 6 })),
        ),
        ([events, delivery, cut, hWall]) => {
          // G1 anywhere
          const g1 = createTwinState('dev1');
          delivery.forEach((e, i) => {
            applyEvent(g1, e);
            if (i === cut) collectGarbage(g1);
          });
          expect(snapshot(g1)).toBe(snapshot(fold(events)));
          // G2 at horizon H: events ≤ H first, GC, then events > H in any order
          const horizon = { wall: hWall, counter: 2, writer: '~', seq: Number.MAX_SAFE_INTEGER, op: 1 as const };
          const older = delivery.filter((e) => e.stamp.wall <= hWall);
          const newer = delivery.filter((e) => e.stamp.wall > hWall);
          const g2 = fold(older);
          collectGarbage(g2, horizon);
          for (const e of newer) expect(applyEvent(g2, e)).not.toBe('LATE');
          expect(snapshot(g2)).toBe(snapshot(fold(events)));
          // a redelivered old event is refused as LATE and changes nothing
          for (const e of older) applyEvent(g2, e);
          expect(snapshot(g2)).toBe(snapshot(fold(events)));
        },
      ),
      RUNS,
    );
  });

  it('S6: reported-only events never change the etag; applied back-end events always do; versions never decrease', () => {
    fc.assert(
      fc.property(
        eventsArb({ withCreate: true, kinds: ['tags', 'desired', 'reported'] }).chain((events) => deliveryArb(events)),
        (delivery) => {
          const s = createTwinState('dev1');
          let etag = renderTwin(s).etag;
          let versions = [0, 0, 0];
          for (const e of delivery) {
            const outcome = applyEvent(s, e);
            const twin = renderTwin(s);
            const now = [sectionVersion(s, 'tags'), sectionVersion(s, 'desired'), sectionVersion(s, 'reported')];
            now.forEach((v, i) => expect(v).toBeGreaterThanOrEqual(versions[i]!));
            if (outcome !== 'APPLIED') expect(twin.etag).toBe(etag);
            else if (e.section === 'reported') expect(twin.etag).toBe(etag);
            else if (e.section === 'tags' || e.section === 'desired') expect(twin.etag).not.toBe(etag);
            etag = twin.etag;
            versions = now;
          }
        },
      ),
      RUNS,
    );
  });
});
