/** Idempotency keys on commands (docs/idempotency.md): a key the owner accepted is applied once. */
import { describe, expect, it } from 'vitest';
import { decideCommands } from './decideCommands.ts';
import type { TwinEvent } from './event.ts';
import { createHybridClock } from './hlc.ts';
import { advanceHorizon } from './horizon.ts';
import { sectionView } from './renderTwin.ts';
import { fromStateDoc, toStateDoc } from './stateDoc.ts';
import {
  applyEvent,
  collectGarbage,
  createTwinState,
  DECIDED_MAX,
  sectionVersion,
  type TwinState,
} from './twinState.ts';
import { validateEvent } from './validateEvent.ts';

function fixture(): {
  state: TwinState;
  clock: ReturnType<typeof createHybridClock>;
  next: (e: Partial<TwinEvent>) => TwinEvent;
  tick: (ms: number) => void;
} {
  let t = 1000;
  let seq = 0;
  const clock = createHybridClock({ physicalNow: () => t++ });
  const state = createTwinState('dev1');
  const next = (e: Partial<TwinEvent>): TwinEvent => ({
    v: 1,
    id: { writer: `cli-${seq % 3}`, seq: ++seq },
    deviceId: 'dev1',
    section: 'desired',
    op: 'merge',
    patch: {},
    stamp: clock.now(),
    actor: 'svc',
    ...e,
  });
  applyEvent(state, next({ section: 'create' }));
  return { state, clock, next, tick: (ms) => void (t += ms) };
}

describe('idempotency keys', () => {
  it('a retry with the same key (new id, new stamp, another writer) is answered DUPLICATE_WRITE and applies nothing', () => {
    const { state, clock, next } = fixture();
    const first = next({ patch: { n: 1 }, cond: { ifMatch: '*', key: 'order-1' } });
    const applied = decideCommands(state, [first], { clock });
    expect(applied.decision.accepted).toBe(true);
    expect(sectionVersion(state, 'desired')).toBe(2);
    applyEvent(state, next({ patch: { other: true } })); // someone writes in between
    const retry = next({ patch: { n: 1 }, cond: { ifMatch: '*', key: 'order-1' } });
    const again = decideCommands(state, [retry], { clock });
    expect(again.decision).toMatchObject({ accepted: false, code: 'DUPLICATE_WRITE' });
    expect(again.duplicateOf).toEqual(first.id);
    expect(again.facts).toEqual([]);
    expect(sectionVersion(state, 'desired')).toBe(3);
    expect(sectionView(state, 'desired')).toEqual({ n: 1, other: true });
    // the answer is not recorded: the same retry sent again gets the same answer
    expect(decideCommands(state, [retry], { clock }).duplicateOf).toEqual(first.id);
  });

  it('the same command sent again (same id) after it was applied is answered DUPLICATE_WRITE, naming itself', () => {
    const { state, clock, next } = fixture();
    const cmd = next({ patch: { n: 1 }, cond: { ifVersion: 1 } });
    expect(decideCommands(state, [cmd], { clock }).decision.accepted).toBe(true);
    const again = decideCommands(state, [cmd], { clock });
    expect(again.decision).toMatchObject({ accepted: false, code: 'DUPLICATE_WRITE' });
    expect(again.duplicateOf).toEqual(cmd.id);
  });

  it('a key whose write was refused is decided afresh: a refusal is not an application', () => {
    const { state, clock, next } = fixture();
    const stale = next({ patch: { n: 1 }, cond: { ifMatch: 'stale', key: 'k' } });
    expect(decideCommands(state, [stale], { clock }).decision).toMatchObject({ code: 'PRECONDITION_FAILED' });
    const retry = next({ patch: { n: 1 }, cond: { ifMatch: '*', key: 'k' } });
    expect(decideCommands(state, [retry], { clock }).decision.accepted).toBe(true);
    expect(sectionView(state, 'desired')).toEqual({ n: 1 });
  });

  it('a unit (tags + desired) with a key is applied once as a whole', () => {
    const { state, clock, next } = fixture();
    const unit = (): TwinEvent[] => [
      next({ section: 'tags', patch: { site: 'b' }, cond: { ifMatch: '*', key: 'u' }, corr: 'c' }),
      next({ section: 'desired', patch: { fw: 2 }, cond: { ifMatch: '*', key: 'u' }, corr: 'c' }),
    ];
    expect(decideCommands(state, unit(), { clock }).decision.accepted).toBe(true);
    const versions = [sectionVersion(state, 'tags'), sectionVersion(state, 'desired')];
    const again = decideCommands(state, unit(), { clock });
    expect(again.decision).toMatchObject({ code: 'DUPLICATE_WRITE' });
    expect([sectionVersion(state, 'tags'), sectionVersion(state, 'desired')]).toEqual(versions);
  });

  it('keys survive the state document (a restarted owner still knows them)', () => {
    const { state, clock, next } = fixture();
    const first = next({ patch: { n: 1 }, cond: { key: 'persisted' } });
    decideCommands(state, [first], { clock });
    const restored = fromStateDoc(toStateDoc(state));
    const again = decideCommands(restored, [next({ patch: { n: 1 }, cond: { key: 'persisted' } })], { clock });
    expect(again.duplicateOf).toEqual(first.id);
    expect(toStateDoc(fromStateDoc(toStateDoc(state)))).toEqual(toStateDoc(state));
  });

  it(`is bounded: a key is remembered among the newest ${DECIDED_MAX} decisions and until the GC horizon passes it`, () => {
    const { state, clock, next, tick } = fixture();
    const first = next({ patch: { n: 0 }, cond: { key: 'old' } });
    decideCommands(state, [first], { clock });
    for (let i = 1; i <= DECIDED_MAX; i++) {
      decideCommands(state, [next({ patch: { n: i }, cond: { key: `k${i}` } })], { clock });
      collectGarbage(state); // as the projector does after every batch
    }
    expect(state.decided.size).toBe(DECIDED_MAX);
    // the oldest key is forgotten once the newest decisions fill the window: a retry now would apply
    expect(decideCommands(state, [next({ patch: { n: 0 }, cond: { key: 'old' } })], { clock }).decision.accepted).toBe(
      true,
    );
    // and the horizon drops every decision it passes
    tick(10_000);
    advanceHorizon(state, { ...clock.now(), writer: '', seq: 0, op: 0 });
    collectGarbage(state);
    expect(state.decided.size).toBe(0);
  });

  it('validation: a key is printable ASCII of 1 to 128 characters', () => {
    const { next } = fixture();
    expect(validateEvent(next({ cond: { key: 'a'.repeat(128) } })).ok).toBe(true);
    for (const key of ['', 'a b', 'a'.repeat(129), 'é']) expect(validateEvent(next({ cond: { key } })).ok).toBe(false);
  });
});
