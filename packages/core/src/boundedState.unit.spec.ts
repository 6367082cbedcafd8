/**
 * The laws of the fold restated for bounded state (docs/bounded-state.md, "The laws, restated"):
 * long runs where the exact windows move and the GC horizon collects, writers that come and go,
 * keys deleted and re-added, duplicates older than the horizon, restores from snapshots taken
 * before GC, commands' facts arriving after later writes of their writer, and events that arrive
 * after their window has passed (refused as LATE, never dropped silently).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EventKind, TwinEvent } from './event.ts';
import { gcHorizonAt, type HorizonOptions } from './horizon.ts';
import { canonicalJson, type Patch } from './json.ts';
import { renderTwin, sectionMetadata, sectionView } from './renderTwin.ts';
import { compareStamps } from './stamp.ts';
import { fromStateDoc, toStateDoc } from './stateDoc.ts';
import { patchArb, sequentialOracle } from './testing/index.ts';
import { forEachNode } from './trie.ts';
import {
  advanceHorizon,
  applyEvent,
  collectGarbage,
  createTwinState,
  DEL,
  RECENT_MAX,
  sectionVersion,
  type ApplyOutcome,
  type TwinState,
} from './index.ts';

/** Small windows, so that a run of a few hundred events crosses many horizons. */
const WINDOWS: HorizonOptions = { maxOfflineWindowMs: 60_000, maxSkewMs: 0, gcMarginMs: 0 };
const T0 = 1_780_000_000_000;

interface Step {
  kind: EventKind;
  op: 'merge' | 'replace';
  patch: Patch;
  dt: number;
  writer: number;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.oneof(
    { weight: 12, arbitrary: fc.constant<EventKind>('reported') },
    { weight: 4, arbitrary: fc.constantFrom<EventKind>('desired', 'tags') },
    { weight: 1, arbitrary: fc.constant<EventKind>('delete') },
  ),
  op: fc.oneof(
    { weight: 15, arbitrary: fc.constant('merge' as const) },
    { weight: 1, arbitrary: fc.constant('replace' as const) },
  ),
  patch: patchArb(2),
  dt: fc.integer({ min: 0, max: 4_000 }),
  writer: fc.integer({ min: 0, max: 2 }),
});

/**
 * A long history of one twin: a create, then reports from a shared gateway writer (sparse seqs),
 * back-end writes from writers that are replaced every minute (as gateway incarnations are), and
 * now and then a delete followed by a create. Every writer's stamps rise with its seqs.
 */
function history(steps: readonly Step[]): TwinEvent[] {
  let wall = T0;
  const seqs = new Map<string, number>();
  const next = (writer: string, by = 1): number => {
    const seq = (seqs.get(writer) ?? 0) + by;
    seqs.set(writer, seq);
    return seq;
  };
  const ev = (writer: string, seq: number, section: EventKind, op: 'merge' | 'replace', patch: Patch): TwinEvent => ({
    v: 1,
    id: { writer, seq },
    deviceId: 'dev1',
    section,
    op,
    patch,
    stamp: { wall, counter: 0 },
    actor: writer,
  });
  const out: TwinEvent[] = [ev('registry', next('registry'), 'create', 'merge', {})];
  for (const s of steps) {
    wall += s.dt + 1;
    if (s.kind === 'reported') out.push(ev('gw-mqtt', next('gw-mqtt', 1 + s.writer * 3), 'reported', s.op, s.patch));
    else if (s.kind === 'delete') {
      out.push(ev('registry', next('registry'), 'delete', 'merge', {}));
      wall += 1;
      out.push(ev('registry', next('registry'), 'create', 'merge', {}));
    } else {
      const writer = `be-${Math.floor((wall - T0) / 60_000)}-${s.writer}`;
      out.push(ev(writer, next(writer), s.kind, s.op, s.patch));
    }
  }
  return out;
}

/**
 * A delivery of `events` in which each event is displaced by at most a few positions, with
 * duplicates: near ones (redelivery) and, at the end, very old ones (replays, late retries).
 */
function deliveryOf(events: readonly TwinEvent[], jitter: readonly number[], dups: readonly number[]): TwinEvent[] {
  const keyed = events.map((e, i) => ({ e, k: i + (jitter[i % jitter.length] ?? 0) }));
  for (const d of dups) {
    const i = d % events.length;
    keyed.push({ e: events[i]!, k: i + 3 });
  }
  keyed.sort((a, b) => a.k - b.k);
  const old = dups.slice(0, 3).map((d) => events[d % Math.max(1, events.length >> 2)]!);
  return [...keyed.map((x) => x.e), ...old];
}

/** Fold a delivery as a projector does: the horizon follows the newest append time seen. */
function fold(delivery: readonly TwinEvent[], outcomes?: ApplyOutcome[]): TwinState {
  const s = createTwinState('dev1');
  let appendTime = 0;
  for (const e of delivery) {
    appendTime = Math.max(appendTime, e.stamp.wall);
    advanceHorizon(s, gcHorizonAt(appendTime, WINDOWS));
    const outcome = applyEvent(s, e);
    outcomes?.push(outcome);
  }
  return s;
}

const docBytes = (s: TwinState): string => canonicalJson(toStateDoc(s));
const stripRoot = (meta: Record<string, unknown>): Record<string, unknown> => {
  const { $lastUpdated: _u, $lastUpdatedVersion: _v, ...rest } = meta;
  return rest;
};

const longRunArb = fc.tuple(
  fc.array(stepArb, { minLength: 100, maxLength: 300 }),
  fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 50 }),
  fc.array(fc.nat(), { maxLength: 30 }),
);

describe('bounded state: the laws over long histories', () => {
  it('B1: bounded reordering and duplicates (near and older than the horizon) give byte-identical state documents', () => {
    fc.assert(
      fc.property(longRunArb, ([steps, jitter, dups]) => {
        const events = history(steps);
        const outcomes: ApplyOutcome[] = [];
        const delivery = deliveryOf(events, jitter, dups);
        const shuffled = fold(delivery, outcomes);
        // within the windows nothing is late; the old duplicates at the end are never applied again
        const tail = Math.min(3, dups.length);
        expect(outcomes.slice(0, outcomes.length - tail)).not.toContain('LATE');
        for (const o of outcomes.slice(outcomes.length - tail)) expect(['DUPLICATE', 'LATE']).toContain(o);
        expect(docBytes(shuffled)).toBe(docBytes(fold(events)));
      }),
      { numRuns: 150 },
    );
  });

  it('B2: the folded twin equals the sequential oracle of every event (view, versions, ranks)', () => {
    fc.assert(
      fc.property(longRunArb, ([steps, jitter, dups]) => {
        const events = history(steps);
        const s = fold(deliveryOf(events, jitter, dups));
        const oracle = sequentialOracle(events);
        for (const section of ['tags', 'desired', 'reported'] as const) {
          expect(sectionView(s, section)).toEqual(oracle.sections[section].view);
          expect(sectionVersion(s, section)).toBe(oracle.sections[section].version);
          if (section !== 'tags')
            expect(stripRoot(sectionMetadata(s, section))).toEqual(oracle.sections[section].metadata);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('B3: state is bounded: windows, writers, tombstones and clears stay within the horizon', () => {
    fc.assert(
      fc.property(longRunArb, ([steps, jitter, dups]) => {
        const events = history(steps);
        const s = fold(deliveryOf(events, jitter, dups));
        collectGarbage(s);
        const h = s.gcHorizon;
        for (const section of ['tags', 'desired', 'reported'] as const) {
          const st = s.sections[section];
          expect(st.recent.length).toBeLessThanOrEqual(RECENT_MAX);
          forEachNode(st.root, (n) => {
            if (n.kind === DEL && n.stamp !== undefined) expect(compareStamps(n.stamp, h)).toBeGreaterThan(0);
            if (n.clr !== undefined) expect(compareStamps(n.clr, h)).toBeGreaterThan(0);
          });
        }
        const active = new Set(
          events
            .filter((e) => compareStamps({ ...e.stamp, writer: e.id.writer, seq: e.id.seq, op: 1 }, h) > 0)
            .map((e) => e.id.writer),
        );
        for (const w of s.writers.keys()) expect(active.has(w)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('B4: a restore from a snapshot taken before GC folds on to the same state', () => {
    fc.assert(
      fc.property(longRunArb, fc.nat(), ([steps, jitter, dups], cut) => {
        const events = history(steps);
        const delivery = deliveryOf(events, jitter, dups);
        const at = cut % delivery.length;
        const first = createTwinState('dev1');
        for (const e of delivery.slice(0, at)) applyEvent(first, e); // no horizon yet: nothing collected
        const restored = fromStateDoc(toStateDoc(first));
        let appendTime = 0;
        delivery.forEach((e, i) => {
          appendTime = Math.max(appendTime, e.stamp.wall);
          if (i < at) return;
          advanceHorizon(restored, gcHorizonAt(appendTime, WINDOWS));
          applyEvent(restored, e);
        });
        expect(docBytes(restored)).toBe(docBytes(fold(delivery)));
      }),
      { numRuns: 100 },
    );
  });
});

describe('bounded state: events the windows cannot judge exactly are refused, never dropped silently', () => {
  const ev = (writer: string, seq: number, section: EventKind, patch: Patch, wall: number): TwinEvent => ({
    v: 1,
    id: { writer, seq },
    deviceId: 'dev1',
    section,
    op: 'merge',
    patch,
    stamp: { wall, counter: 0 },
    actor: writer,
  });

  it('a desired event that arrives after more than RECENT_MAX newer desired events is LATE', () => {
    const s = createTwinState('dev1');
    applyEvent(s, ev('registry', 1, 'create', {}, T0));
    const slow = ev('client-x', 1, 'desired', { slow: true }, T0 + 1);
    for (let i = 0; i < RECENT_MAX + 1; i++)
      expect(applyEvent(s, ev('be-1', i + 1, 'desired', { n: i }, T0 + 10 + i))).toBe('APPLIED');
    const before = canonicalJson(renderTwin(s));
    expect(applyEvent(s, slow)).toBe('LATE');
    expect(canonicalJson(renderTwin(s))).toBe(before);
  });

  it('a reported event below the window, from a seq its writer never folded, is still folded exactly', () => {
    const s = createTwinState('dev1');
    const events = [ev('registry', 1, 'create', {}, T0)];
    for (let i = 0; i < RECENT_MAX + 5; i++) events.push(ev('gw-1', i + 1, 'reported', { n: i }, T0 + 10 + i));
    const straggler = ev('gw-2', 1, 'reported', { s: 1, n: -1 }, T0 + 11);
    for (const e of events) applyEvent(s, e);
    expect(applyEvent(s, straggler)).toBe('APPLIED');
    const oracle = sequentialOracle([...events, straggler]);
    expect(sectionView(s, 'reported')).toEqual(oracle.sections.reported.view);
    expect(sectionVersion(s, 'reported')).toBe(oracle.sections.reported.version);
    expect(applyEvent(s, straggler)).toBe('DUPLICATE');
  });

  it('an event at or below the GC horizon is LATE, a duplicate of a known writer stays a DUPLICATE', () => {
    const s = createTwinState('dev1');
    const old = ev('gw-1', 1, 'reported', { a: 1 }, T0 + 10);
    applyEvent(s, ev('registry', 1, 'create', {}, T0));
    applyEvent(s, old);
    applyEvent(s, ev('gw-1', 2, 'reported', { a: 2 }, T0 + 100_000));
    advanceHorizon(s, gcHorizonAt(T0 + 100_000, WINDOWS));
    expect(applyEvent(s, old)).toBe('DUPLICATE');
    expect(applyEvent(s, ev('gw-9', 1, 'reported', { a: 3 }, T0 + 20))).toBe('LATE');
  });

  it("a command's fact that reaches the log after later writes of its writer is folded, not taken for a duplicate", () => {
    // live: the owner applies the fact when it decides the command; a rebuild meets it after the writer's later records
    const create = ev('registry', 1, 'create', {}, T0);
    const later = Array.from({ length: 40 }, (_, i) => ev('gw-rest', 6 + i, 'desired', { k: i }, T0 + 100 + i));
    const fact = ev('gw-rest', 5, 'desired', { decided: true }, T0 + 200);
    const live = fold([create, fact, ...later, fact]);
    const rebuild = fold([create, ...later, fact]);
    expect(docBytes(rebuild)).toBe(docBytes(live));
    expect(sectionView(rebuild, 'desired')).toMatchObject({ decided: true });
  });
});

describe('bounded state: a chatty twin does not grow', () => {
  it('50,000 reports and 500 desired writes from rotating writers: the state document stays flat', () => {
    const s = createTwinState('dev1');
    applyEvent(s, {
      v: 1,
      id: { writer: 'registry', seq: 1 },
      deviceId: 'dev1',
      section: 'create',
      op: 'merge',
      patch: {},
      stamp: { wall: T0, counter: 0 },
      actor: 'registry',
    });
    const sizes: number[] = [];
    for (let i = 1; i <= 50_000; i++) {
      const wall = T0 + i * 1000;
      advanceHorizon(s, gcHorizonAt(wall, WINDOWS));
      const key = `k${i % 13}`;
      applyEvent(s, {
        v: 1,
        id: { writer: 'gw-mqtt-1', seq: i * 3 },
        deviceId: 'dev1',
        section: 'reported',
        op: 'merge',
        patch: { battery: i % 100, [key]: i % 2 === 0 ? null : i },
        stamp: { wall, counter: 0 },
        actor: 'dev1',
      });
      if (i % 100 === 0) {
        const writer = `be-${Math.floor(i / 5_000)}`;
        applyEvent(s, {
          v: 1,
          id: { writer, seq: i },
          deviceId: 'dev1',
          section: 'desired',
          op: 'merge',
          patch: { sp: i % 7, [key]: i % 300 === 0 ? null : 1 },
          stamp: { wall: wall + 1, counter: 0 },
          actor: 'ops',
        });
      }
      if (i % 5_000 === 0) sizes.push(docBytes(s).length);
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(Math.min(...sizes) * 1.2);
    expect(s.writers.size).toBeLessThanOrEqual(2); // the device's gateway and the current back-end writer
  });
});
