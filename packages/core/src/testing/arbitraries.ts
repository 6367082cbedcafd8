/**
 * fast-check generators for twin events, tuned so that the fold's hard cases really occur
 * (docs/fold.md, "The tests that hold the fold to this"): tiny key alphabets with `/` and `~`, tiny clock ranges so stamps tie on
 * wall and counter, ~25 % nulls, ~10 % replaces, occasional create and delete.
 */
import fc from 'fast-check';
import type { EventKind, TwinEvent } from '../event.ts';
import type { Json, Patch } from '../json.ts';

export const KEYS = ['a', 'b', 'x/y', 'm~n'] as const;
export const WRITERS = ['gw-a', 'gw-b', 'gw-c'] as const;

const scalar: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom('A', 'B'),
  fc.boolean(),
  fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
);

/** A merge patch of depth ≤ `depth` over the tiny key alphabet. */
export function patchArb(depth = 3): fc.Arbitrary<Patch> {
  const value: fc.Arbitrary<Json | Patch | null> =
    depth <= 1
      ? fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: scalar })
      : fc.oneof(
          { weight: 1, arbitrary: fc.constant(null) },
          { weight: 2, arbitrary: scalar },
          { weight: 2, arbitrary: fc.constant(0).chain(() => patchArb(depth - 1)) },
        );
  return fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 3 });
}

interface RawEvent {
  kind: EventKind;
  op: 'merge' | 'replace';
  patch: Patch;
  wall: number;
  counter: number;
  writer: string;
}

const rawEvent: fc.Arbitrary<RawEvent> = fc.record({
  kind: fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom<EventKind>('tags', 'desired', 'reported') },
    { weight: 1, arbitrary: fc.constantFrom<EventKind>('create', 'delete') },
  ),
  op: fc.oneof(
    { weight: 9, arbitrary: fc.constant('merge' as const) },
    { weight: 1, arbitrary: fc.constant('replace' as const) },
  ),
  patch: patchArb(3),
  wall: fc.integer({ min: 0, max: 6 }),
  counter: fc.integer({ min: 0, max: 2 }),
  writer: fc.constantFrom(...WRITERS),
});

/**
 * A set of distinct events for one device (unique ids: `seq` counts per writer). Pass
 * `{ withCreate: true }` to start with a `create` at wall 0 so the twin exists.
 */
export function eventsArb({
  maxLength = 25,
  deviceId = 'dev1',
  withCreate = false,
  kinds,
}: { maxLength?: number; deviceId?: string; withCreate?: boolean; kinds?: readonly EventKind[] } = {}): fc.Arbitrary<
  TwinEvent[]
> {
  const arb = kinds === undefined ? rawEvent : rawEvent.filter((r) => kinds.includes(r.kind));
  return fc.array(arb, { maxLength }).map((raws) => {
    // One HLC per writer: a writer's stamps rise with its seqs (docs/fold.md, "Who stamps"), which the causal
    // context relies on below its windows (docs/bounded-state.md). Reassign each writer's stamps
    // in ascending order; ties across writers stay.
    const byWriter = new Map<string, RawEvent[]>();
    for (const r of raws) byWriter.set(r.writer, [...(byWriter.get(r.writer) ?? []), r]);
    for (const list of byWriter.values()) {
      const clocks = list.map((r) => [r.wall, r.counter] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      list.forEach((r, i) => ([r.wall, r.counter] = clocks[i]!));
    }
    const seqs = new Map<string, number>();
    const events: TwinEvent[] = raws.map((r) => {
      // per-writer sequences, so equal seqs across writers make the writer id matter in ties
      const seq = (seqs.get(r.writer) ?? 0) + 1;
      seqs.set(r.writer, seq);
      const lifecycle = r.kind === 'create' || r.kind === 'delete';
      return {
        v: 1,
        id: { writer: r.writer, seq },
        deviceId,
        section: r.kind,
        op: lifecycle ? 'merge' : r.op,
        patch: lifecycle ? {} : r.patch,
        stamp: { wall: r.wall, counter: r.counter },
        actor: r.writer,
      };
    });
    if (withCreate) {
      events.unshift({
        v: 1,
        id: { writer: 'registry', seq: 0 },
        deviceId,
        section: 'create',
        op: 'merge',
        patch: {},
        stamp: { wall: 0, counter: 0 },
        actor: 'registry',
      });
    }
    return events;
  });
}

/** Events plus a delivery sequence: a permutation of the events with random duplicates mixed in. */
export function deliveryArb(events: readonly TwinEvent[]): fc.Arbitrary<TwinEvent[]> {
  return fc.subarray([...events]).chain((dups) => {
    const all = [...events, ...dups];
    return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
  });
}
