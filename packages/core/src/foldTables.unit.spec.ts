/**
 * Table tests of the fold: the RFC 7396 Appendix A examples, and a table of small scenarios
 * (docs/fold.md, "The tests that hold the fold to this"), each checked in every delivery order.
 */
import { describe, expect, it } from 'vitest';
import type { Section, TwinEvent } from './event.ts';
import { canonicalJson, type Json, type JsonObject, type Patch } from './json.ts';
import { applyMergePatch } from './mergePatch.ts';
import { computeEtag, renderTwin, sectionView } from './renderTwin.ts';
import { applyEvent, createTwinState, sectionVersion, twinVersion, type TwinState } from './twinState.ts';

let seq = 0;
function ev(
  section: TwinEvent['section'],
  patch: Patch,
  wall: number,
  { op = 'merge', writer = 'gw-a', counter = 0 }: { op?: 'merge' | 'replace'; writer?: string; counter?: number } = {},
): TwinEvent {
  return {
    v: 1,
    id: { writer, seq: ++seq },
    deviceId: 'd',
    section,
    op,
    patch,
    stamp: { wall, counter },
    actor: writer,
  };
}

function fold(events: readonly TwinEvent[]): TwinState {
  const s = createTwinState('d');
  for (const e of events) applyEvent(s, e);
  return s;
}

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** Fold every order of `events` and check all give `expected` and the same snapshot bytes. */
function expectEveryOrder(events: TwinEvent[], section: Section, expected: JsonObject): TwinState {
  let first: string | undefined;
  let last: TwinState | undefined;
  for (const order of permutations(events)) {
    const s = fold(order);
    expect(sectionView(s, section)).toEqual(expected);
    const bytes = canonicalJson(renderTwin(s));
    first ??= bytes;
    expect(bytes).toBe(first);
    last = s;
  }
  return last!;
}

// RFC 7396 Appendix A. Rows whose target or patch is not an object are wrapped under key "x",
// since a twin section is always an object; row 13 (a target holding null) cannot occur in a twin.
const RFC7396: [Json, Json | null, Json][] = [
  [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
  [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
  [{ a: 'b' }, { a: null } as unknown as Json, {}],
  [{ a: 'b', b: 'c' }, { a: null } as unknown as Json, { b: 'c' }],
  [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
  [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
  [{ a: { b: 'c' } }, { a: { b: 'd', c: null } } as unknown as Json, { a: { b: 'd' } }],
  [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
  [{ x: ['a', 'b'] }, { x: ['c', 'd'] }, { x: ['c', 'd'] }],
  [{ x: { a: 'b' } }, { x: ['c'] }, { x: ['c'] }],
  [{ x: { a: 'foo' } }, { x: null } as unknown as Json, {}],
  [{ x: { a: 'foo' } }, { x: 'bar' }, { x: 'bar' }],
  [{ x: [1, 2] }, { x: { a: 'b', c: null } } as unknown as Json, { x: { a: 'b' } }],
  [{}, { a: { bb: { ccc: null } } } as unknown as Json, { a: { bb: {} } }],
];

describe('RFC 7396 Appendix A', () => {
  it.each(RFC7396.map((row, i) => [i + 1, ...row] as const))('example %i', (_n, target, patch, result) => {
    expect(applyMergePatch(target, patch)).toEqual(result);
    expectEveryOrder(
      [ev('desired', target as Patch, 1), ev('desired', patch as Patch, 2)],
      'desired',
      result as JsonObject,
    );
  });
});

describe('behaviour table', () => {
  const rows: [string, () => TwinEvent[], JsonObject][] = [
    [
      '1 objects merge',
      () => [ev('desired', { a: { x: 1 } }, 1), ev('desired', { a: { y: 2 } }, 2)],
      { a: { x: 1, y: 2 } },
    ],
    [
      '2 a write after a delete revives only later children',
      () => [ev('desired', { a: { x: 1 } }, 1), ev('desired', { a: null }, 2), ev('desired', { a: { y: 2 } }, 3)],
      { a: { y: 2 } },
    ],
    [
      '3 the higher stamp wins whatever the order',
      () => [ev('desired', { a: { x: 1 } }, 3), ev('desired', { a: null }, 2)],
      { a: { x: 1 } },
    ],
    [
      '4 the tombstone suppresses older writes',
      () => [ev('desired', { a: null }, 2), ev('desired', { a: { x: 1 } }, 1)],
      {},
    ],
    [
      '5 scalar → object resets to {}',
      () => [ev('desired', { a: 5 }, 1), ev('desired', { a: { x: 1 } }, 2)],
      { a: { x: 1 } },
    ],
    [
      '6 object → scalar replaces the subtree',
      () => [ev('desired', { a: { x: 1 } }, 1), ev('desired', { a: 7 }, 2)],
      { a: 7 },
    ],
    [
      '7 the clear at a is inherited',
      () => [
        ev('desired', { a: { b: { c: 1 } } }, 1),
        ev('desired', { a: 5 }, 2),
        ev('desired', { a: { b: { d: 2 } } }, 3),
      ],
      { a: { b: { d: 2 } } },
    ],
    [
      '8 a late older scalar loses',
      () => [ev('desired', { a: { x: 1 } }, 4), ev('desired', { a: 9 }, 3)],
      { a: { x: 1 } },
    ],
    ['9 arrays are atomic', () => [ev('desired', { a: [1, 2] }, 1), ev('desired', { a: [3] }, 2)], { a: [3] }],
    [
      '10 objects inside arrays are never merged',
      () => [ev('desired', { a: [1, { b: 2 }] }, 1), ev('desired', { a: { b: 3 } }, 2)],
      { a: { b: 3 } },
    ],
    [
      '11 the emptied object remains',
      () => [ev('desired', { a: { x: 1 } }, 1), ev('desired', { a: { x: null } }, 2)],
      { a: {} },
    ],
    ['12 a delete creates nothing', () => [ev('desired', { p1: null }, 1)], {}],
    ['13 an object patch creates {}', () => [ev('desired', { p1: { p2: null } }, 1)], { p1: {} }],
    ['14a an empty object on absent', () => [ev('desired', { a: {} }, 1)], { a: {} }],
    [
      '14b an empty object merges nothing',
      () => [ev('desired', { a: { x: 1 } }, 1), ev('desired', { a: {} }, 2)],
      { a: { x: 1 } },
    ],
    [
      '15 a replace clears the section first',
      () => [ev('desired', { a: 1, b: 2 }, 1), ev('desired', { c: 1 }, 2, { op: 'replace' })],
      { c: 1 },
    ],
    [
      '16 older writes sit under the clear',
      () => [ev('desired', { c: 1 }, 5, { op: 'replace' }), ev('desired', { a: 1 }, 4)],
      { c: 1 },
    ],
    [
      '17 later writes stack on a replace',
      () => [ev('desired', { c: 1 }, 5, { op: 'replace' }), ev('desired', { d: 1 }, 6)],
      { c: 1, d: 1 },
    ],
    [
      '18 whole-section null is a replace with {}',
      () => [ev('desired', { a: 1 }, 1), ev('desired', {}, 2, { op: 'replace' })],
      {},
    ],
    [
      '19 per-path LWW inside a shared parent',
      () => [
        ev('desired', { a: { x: null } }, 3),
        ev('desired', { a: { y: 1 } }, 2),
        ev('desired', { a: { x: 1 } }, 1),
      ],
      { a: { y: 1 } },
    ],
    [
      '20 a tie is broken by writer id',
      () => [ev('desired', { a: 'A' }, 3, { writer: 'gw-a' }), ev('desired', { a: 'B' }, 3, { writer: 'gw-b' })],
      { a: 'B' },
    ],
  ];
  it.each(rows)('row %s', (_name, events, expected) => {
    expectEveryOrder(events(), 'desired', expected);
  });

  it('row 21: a redelivered event changes nothing, not even $version', () => {
    const e = ev('desired', { a: 1 }, 1);
    const s = fold([ev('create', {}, 0), e]);
    const before = canonicalJson(renderTwin(s));
    expect(applyEvent(s, e)).toBe('DUPLICATE');
    expect(canonicalJson(renderTwin(s))).toBe(before);
  });

  it('row 22: a report between a read and an If-Match write leaves the etag alone', () => {
    const s = fold([ev('create', {}, 0), ev('desired', { a: 1 }, 1)]);
    const etag = computeEtag(s);
    applyEvent(s, ev('reported', { a: 1 }, 2));
    expect(computeEtag(s)).toBe(etag);
  });

  it('row 23: a late event of a deleted generation leaves no trace and no count', () => {
    const events = [ev('create', {}, 0), ev('delete', {}, 5), ev('desired', { a: 1 }, 4)];
    const s = expectEveryOrder(events, 'desired', {});
    expect(sectionVersion(s, 'desired')).toBe(0);
  });
});

describe('lifecycle', () => {
  it('create gives versions 1/1/2; delete and re-create restart them', () => {
    const s = fold([ev('create', {}, 1), ev('desired', { a: 1 }, 2), ev('reported', { b: 1 }, 3)]);
    expect([sectionVersion(s, 'desired'), sectionVersion(s, 'reported'), twinVersion(s)]).toEqual([2, 2, 4]);
    applyEvent(s, ev('delete', {}, 4));
    applyEvent(s, ev('create', {}, 5));
    const twin = renderTwin(s);
    expect(twin.properties.desired.$version).toBe(1);
    expect(twin.properties.reported.$version).toBe(1);
    expect(twin.version).toBe(2);
    expect(sectionView(s, 'desired')).toEqual({});
  });

  it('a fresh twin renders as IoT Hub does, with metadata on every node', () => {
    const s = fold([
      ev('create', {}, 1_700_000_000_000),
      ev('desired', { fw: '1.2', cfg: { rate: 5 } }, 1_700_000_000_500),
    ]);
    expect(renderTwin(s)).toEqual({
      deviceId: 'd',
      etag: computeEtag(s),
      version: 3,
      status: 'enabled',
      tags: {},
      properties: {
        desired: {
          cfg: { rate: 5 },
          fw: '1.2',
          $metadata: {
            $lastUpdated: '2023-11-14T22:13:20.500Z',
            $lastUpdatedVersion: 2,
            cfg: {
              $lastUpdated: '2023-11-14T22:13:20.500Z',
              $lastUpdatedVersion: 2,
              rate: { $lastUpdated: '2023-11-14T22:13:20.500Z', $lastUpdatedVersion: 2 },
            },
            fw: { $lastUpdated: '2023-11-14T22:13:20.500Z', $lastUpdatedVersion: 2 },
          },
          $version: 2,
        },
        reported: { $metadata: { $lastUpdated: '2023-11-14T22:13:20.000Z' }, $version: 1 },
      },
    });
    expect(renderTwin(s, { actors: true }).properties.desired['$metadata']).toMatchObject({
      fw: { $lastUpdatedBy: 'gw-a' },
    });
  });
});
