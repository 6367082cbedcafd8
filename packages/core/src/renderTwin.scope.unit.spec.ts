/** `sectionScope` (the diff's view, unordered) holds the same members and values as `sectionView`. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sectionScope, sectionView } from './renderTwin.ts';
import { patchArb } from './testing/index.ts';
import { applyEvent, createTwinState } from './twinState.ts';

const eventArb = fc.record({
  patch: patchArb(3),
  op: fc.constantFrom('merge', 'replace'),
  writer: fc.constantFrom('a', 'b', 'c'),
  wall: fc.integer({ min: 1, max: 50 }),
});

describe('sectionScope', () => {
  it('equals sectionView, whole and scoped to top-level keys, after any history of merges, replaces and clears', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { maxLength: 25 }),
        fc.array(fc.string({ maxLength: 3 }), { maxLength: 4 }),
        (events, extra) => {
          const state = createTwinState('d');
          let seq = 0;
          const base = { v: 1, deviceId: 'd', actor: 'x' };
          applyEvent(state, {
            ...base,
            id: { writer: 'a', seq: seq++ },
            section: 'create',
            op: 'merge',
            patch: {},
            stamp: { wall: 0, counter: 0 },
          });
          for (const e of events) {
            applyEvent(state, {
              ...base,
              id: { writer: e.writer, seq: seq++ },
              section: 'desired',
              op: e.op,
              patch: e.patch,
              stamp: { wall: e.wall, counter: seq },
            });
            expect(sectionScope(state, 'desired')).toEqual(sectionView(state, 'desired'));
            const keys = [...Object.keys(e.patch), ...extra];
            expect(sectionScope(state, 'desired', keys)).toEqual(sectionView(state, 'desired', keys));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
