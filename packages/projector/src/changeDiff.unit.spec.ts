/**
 * A change record's diff computed from `sectionScope` (unordered, the projector's path) encodes to
 * the same bytes as one computed from `sectionView` (sorted, the straightforward path).
 */
import { encodeOutputRecord } from '@twinlog/codec';
import { applyEvent, createTwinState, diffMergePatch, sectionScope, sectionView } from '@twinlog/core';
import { patchArb } from '@twinlog/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const eventArb = fc.record({
  patch: patchArb(3),
  op: fc.constantFrom('merge', 'replace'),
  writer: fc.constantFrom('a', 'b', 'c'),
  wall: fc.integer({ min: 1, max: 50 }),
});

const bytes = (diff: object): string =>
  Buffer.from(
    encodeOutputRecord({
      kind: 'change',
      v: 1,
      deviceId: 'd',
      opType: 'updateTwin',
      id: { writer: 'a', seq: 1 },
      section: 'desired',
      actor: 'x',
      wall: 1,
      counter: 0,
      diff: diff as Record<string, never>,
      version: 1,
      desiredVersion: 1,
      reportedVersion: 1,
      source: { topic: 't', partition: 0, offset: 0 },
    }),
  ).toString('hex');

describe('change record diffs', () => {
  it('are byte for byte the same from sectionScope as from sectionView', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 25 }), (events) => {
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
          const scope = e.op === 'replace' ? undefined : Object.keys(e.patch);
          const beforeView = sectionView(state, 'desired', scope);
          const beforeScope = sectionScope(state, 'desired', scope);
          applyEvent(state, {
            ...base,
            id: { writer: e.writer, seq: seq++ },
            section: 'desired',
            op: e.op,
            patch: e.patch,
            stamp: { wall: e.wall, counter: seq },
          });
          const viewDiff = diffMergePatch(beforeView, sectionView(state, 'desired', scope));
          const scopeDiff = diffMergePatch(beforeScope, sectionScope(state, 'desired', scope));
          expect(bytes(scopeDiff)).toBe(bytes(viewDiff));
        }
      }),
      { numRuns: 500 },
    );
  });
});
