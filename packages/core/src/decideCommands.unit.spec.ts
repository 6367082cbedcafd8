import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TwinEvent } from './event.ts';
import { createHybridClock } from './hlc.ts';
import { canonicalJson, type Patch } from './json.ts';
import { decideCommands, unquoteEtag } from './decideCommands.ts';
import { computeEtag, renderTwin, sectionView } from './renderTwin.ts';
import { patchArb } from './testing/index.ts';
import { applyEvent, createTwinState, sectionVersion, type TwinState } from './twinState.ts';

function fixture(): {
  state: TwinState;
  clock: ReturnType<typeof createHybridClock>;
  next: (e: Partial<TwinEvent>) => TwinEvent;
} {
  let t = 1000;
  let seq = 0;
  const clock = createHybridClock({ physicalNow: () => t++ });
  const state = createTwinState('dev1');
  const next = (e: Partial<TwinEvent>): TwinEvent => ({
    v: 1,
    id: { writer: 'gw-1', seq: ++seq },
    deviceId: 'dev1',
    section: 'desired',
    op: 'merge',
    patch: {},
    stamp: clock.now(),
    actor: 'svc',
    ...e,
  });
  applyEvent(state, next({ section: 'create' }));
  return { state, clock, next };
}

describe('decideCommands', () => {
  it('accepts a matching etag, with or without quotes, and "*"', () => {
    const { state, clock, next } = fixture();
    for (const form of [(e: string) => e, (e: string) => `"${e}"`, () => '*', () => '"*"']) {
      const ifMatch = form(computeEtag(state));
      const cmd = next({ patch: { a: ifMatch.length }, cond: { ifMatch } });
      const { decision, facts } = decideCommands(state, [cmd], { clock });
      expect(decision.accepted).toBe(true);
      expect(facts).toHaveLength(1);
      expect(facts[0]!.cond).toBeUndefined();
      expect(facts[0]!.id).toEqual(cmd.id);
      // the log copy of the fact is a duplicate: the owner already applied it
      expect(applyEvent(state, facts[0]!)).toBe('DUPLICATE');
    }
    expect(sectionVersion(state, 'desired')).toBe(5);
  });

  it('rejects a stale etag with the current one, and records the decision for retries', () => {
    const { state, clock, next } = fixture();
    const stale = computeEtag(state);
    applyEvent(state, next({ patch: { a: 1 } }));
    const cmd = next({ patch: { a: 2 }, cond: { ifMatch: stale } });
    const first = decideCommands(state, [cmd], { clock });
    expect(first.decision).toMatchObject({ accepted: false, code: 'PRECONDITION_FAILED', etag: computeEtag(state) });
    expect(sectionView(state, 'desired')).toEqual({ a: 1 });
    const retry = decideCommands(state, [cmd], { clock });
    expect(retry.replayed).toBe(true);
    expect(retry.decision).toEqual(first.decision);
  });

  it('checks ifVersion against the section $version', () => {
    const { state, clock, next } = fixture();
    expect(
      decideCommands(state, [next({ patch: { a: 1 }, cond: { ifVersion: 1 } })], { clock }).decision.accepted,
    ).toBe(true);
    expect(
      decideCommands(state, [next({ patch: { a: 2 }, cond: { ifVersion: 1 } })], { clock }).decision,
    ).toMatchObject({
      accepted: false,
      code: 'PRECONDITION_FAILED',
    });
  });

  it('rejects commands on unknown devices, on reported, and ones that would grow a section past its limit', () => {
    const { state, clock, next } = fixture();
    const ghost = createTwinState('ghost');
    expect(
      decideCommands(ghost, [next({ deviceId: 'ghost', cond: { ifMatch: '*' } })], { clock }).decision,
    ).toMatchObject({
      code: 'DEVICE_NOT_FOUND',
      etag: undefined,
    });
    expect(
      decideCommands(state, [next({ section: 'reported', cond: { ifMatch: '*' } })], { clock }).decision,
    ).toMatchObject({
      code: 'SECTION_FORBIDDEN',
    });
    const big = (n: number): Patch => ({ [`k${n}`]: 'x'.repeat(4000) });
    const cmds = [1, 2, 3].map((n) => next({ section: 'tags', patch: big(n), cond: { ifMatch: '*' } }));
    expect(decideCommands(state, cmds, { clock }).decision).toMatchObject({ code: 'SECTION_TOO_LARGE' });
    expect(sectionView(state, 'tags')).toEqual({});
  });

  it('a corr group of tags + desired is accepted or rejected whole', () => {
    const { state, clock, next } = fixture();
    const etag = computeEtag(state);
    const group = [
      next({ section: 'tags', patch: { site: 'A' }, cond: { ifMatch: etag }, corr: 'c1' }),
      next({ section: 'desired', patch: { fw: '2' }, cond: { ifMatch: etag }, corr: 'c1' }),
    ];
    const { decision, facts } = decideCommands(state, group, { clock });
    expect(decision.accepted).toBe(true);
    expect(facts).toHaveLength(2);
    expect(sectionView(state, 'tags')).toEqual({ site: 'A' });
    const again = [
      next({ section: 'tags', patch: { site: 'B' }, cond: { ifMatch: etag }, corr: 'c2' }),
      next({ section: 'desired', patch: { fw: '3' }, cond: { ifMatch: etag }, corr: 'c2' }),
    ];
    expect(decideCommands(state, again, { clock }).decision.accepted).toBe(false);
    expect(sectionView(state, 'tags')).toEqual({ site: 'A' });
    expect(sectionView(state, 'desired')).toEqual({ fw: '2' });
  });

  it('facts are stamped above everything the state holds, even if the clock lags', () => {
    const { state, next } = fixture();
    applyEvent(state, next({ patch: { a: 1 }, stamp: { wall: 9_000_000, counter: 7 } }));
    const lagging = createHybridClock({ physicalNow: () => 5 });
    const { facts } = decideCommands(state, [next({ patch: { a: 2 }, cond: { ifMatch: '*' } })], { clock: lagging });
    expect(facts[0]!.stamp).toEqual({ wall: 9_000_000, counter: 9 });
    expect(sectionView(state, 'desired')).toEqual({ a: 2 });
  });

  it('S7: read → If-Match → write by two writers with device reports interleaved: no lost update, no 412 from reports', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('read' as const), writer: fc.integer({ min: 0, max: 1 }) }),
      fc.record({ kind: fc.constant('write' as const), writer: fc.integer({ min: 0, max: 1 }), patch: patchArb(2) }),
      fc.record({ kind: fc.constant('report' as const), patch: patchArb(2) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        const { state, clock, next } = fixture();
        // model: the number of accepted back-end writes; each writer remembers the count it read at
        let writes = 0;
        const readAt: (number | undefined)[] = [undefined, undefined];
        const etags: (string | undefined)[] = [undefined, undefined];
        for (const s of steps) {
          if (s.kind === 'read') {
            readAt[s.writer] = writes;
            etags[s.writer] = renderTwin(state).etag;
          } else if (s.kind === 'report') {
            applyEvent(state, next({ section: 'reported', patch: s.patch }));
          } else if (etags[s.writer] !== undefined) {
            const before = canonicalJson(sectionView(state, 'desired'));
            const { decision } = decideCommands(
              state,
              [next({ patch: s.patch, cond: { ifMatch: `"${etags[s.writer]}"` } })],
              { clock },
            );
            const fresh = readAt[s.writer] === writes;
            expect(decision.accepted).toBe(fresh);
            if (decision.accepted) writes++;
            else {
              expect(decision.etag).not.toBe(unquoteEtag(`"${etags[s.writer]}"`));
              expect(canonicalJson(sectionView(state, 'desired'))).toBe(before);
            }
          }
        }
        expect(sectionVersion(state, 'desired')).toBe(1 + writes);
      }),
      { numRuns: 1500 },
    );
  });
});
