import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DELTA_STATUSES, delta, deltaEquals, deltaKey, type DeltaEntry, type DeltaInput } from './delta.ts';
import type { JsonObject } from './json.ts';

const T0 = '2024-01-01T00:00:00.0000000Z';
const T1 = '2024-01-01T00:01:00.0000000Z';
const T2 = '2024-01-01T00:02:00.0000000Z';
const T3 = '2024-01-01T00:03:00.0000000Z';

/** A twin whose desired leaves all carry metadata `{ $lastUpdated: T1, $lastUpdatedVersion: version }`. */
function twin(
  desired: JsonObject,
  reported: JsonObject,
  {
    version = 4,
    desiredMeta,
    reportedMeta,
  }: { version?: number; desiredMeta?: JsonObject; reportedMeta?: JsonObject } = {},
): DeltaInput {
  return {
    deviceId: 'dev1',
    properties: {
      desired: {
        ...desired,
        $metadata: desiredMeta ?? { $lastUpdated: T1, $lastUpdatedVersion: version },
        $version: version,
      },
      reported: { ...reported, $metadata: reportedMeta ?? { $lastUpdated: T2 }, $version: 9 },
    },
  };
}

function only(t: DeltaInput): DeltaEntry {
  const { entries } = delta(t);
  expect(entries).toHaveLength(1);
  return entries[0]!;
}

describe('delta without acknowledgements', () => {
  it('reports converged when reported equals desired, since the later $lastUpdated', () => {
    const state = delta(twin({ fw: '1.2' }, { fw: '1.2' }));
    expect(state).toEqual({
      deviceId: 'dev1',
      desiredVersion: 4,
      reportedVersion: 9,
      entries: [{ path: ['fw'], status: 'converged', desired: '1.2', reported: '1.2', desiredVersion: 4, since: T2 }],
      counts: { pending: 0, acknowledged: 0, rejected: 0, converged: 1, stale: 0 },
      converged: true,
    });
  });

  it('reports pending when reported is missing (no reported field) or differs', () => {
    const missing = only(twin({ fw: '1.2' }, {}));
    expect(missing).toEqual({ path: ['fw'], status: 'pending', desired: '1.2', desiredVersion: 4, since: T1 });
    expect('reported' in missing).toBe(false);
    expect(only(twin({ fw: '1.2' }, { fw: '1.1' }))).toMatchObject({ status: 'pending', reported: '1.1', since: T1 });
    expect(only(twin({ n: 1 }, { n: '1' })).status).toBe('pending');
    expect(only(twin({ o: { a: 1 } }, { o: 1 })).status).toBe('pending');
  });

  it('diffs nested objects per leaf, ignoring extra reported keys', () => {
    const state = delta(
      twin({ cfg: { a: 1, b: { c: true, d: 'x' } } }, { cfg: { a: 1, b: { c: false }, extra: 5 }, other: 1 }),
    );
    expect(state.entries.map((e) => [e.path.join('.'), e.status])).toEqual([
      ['cfg.a', 'converged'],
      ['cfg.b.c', 'pending'],
      ['cfg.b.d', 'pending'],
    ]);
    expect(state.counts).toEqual({ pending: 2, acknowledged: 0, rejected: 0, converged: 1, stale: 0 });
    expect(state.converged).toBe(false);
  });

  it('compares arrays whole, order included', () => {
    expect(only(twin({ l: [1, { a: 2 }, [3]] }, { l: [1, { a: 2 }, [3]] })).status).toBe('converged');
    expect(only(twin({ l: [1, 2, 3] }, { l: [1, 2] })).status).toBe('pending');
    expect(only(twin({ l: [1, 2] }, { l: [1, 2, 3] })).status).toBe('pending');
    expect(only(twin({ l: [1, 2] }, { l: [2, 1] })).status).toBe('pending');
    expect(only(twin({ l: [] }, { l: [] }))).toMatchObject({ path: ['l'], status: 'converged', desired: [] });
  });

  it('ignores $-keys in desired and reported, and deep-compares objects regardless of key order', () => {
    const state = delta(twin({ a: { x: 1, y: 2 } }, { a: { y: 2, x: 1 }, $extra: 1 }));
    expect(state.entries.map((e) => e.path)).toEqual([
      ['a', 'x'],
      ['a', 'y'],
    ]);
    expect(state.converged).toBe(true);
  });

  it('gives no entries for an empty desired section or empty desired objects', () => {
    const state = delta(twin({ a: {} }, { a: { b: 1 } }));
    expect(state.entries).toEqual([]);
    expect(state.converged).toBe(true);
    expect(delta({ deviceId: 'd', properties: { desired: {}, reported: {} } })).toEqual({
      deviceId: 'd',
      desiredVersion: 0,
      reportedVersion: 0,
      entries: [],
      counts: { pending: 0, acknowledged: 0, rejected: 0, converged: 0, stale: 0 },
      converged: true,
    });
  });

  it('sorts entries by path (UTF-16 order, shorter prefix first)', () => {
    const state = delta(twin({ b: 1, a: { z: 1, b: 2 }, B: 3, 'a b': 4 }, {}));
    expect(state.entries.map((e) => e.path)).toEqual([['B'], ['a', 'b'], ['a', 'z'], ['a b'], ['b']]);
  });

  it('does not read inherited properties of reported objects', () => {
    expect(only(twin({ a: { toString: 'x' } }, { a: {} })).status).toBe('pending');
    expect('reported' in only(twin({ a: { toString: 'x' } }, { a: {} }))).toBe(false);
  });
});

describe('delta with Plug and Play acknowledgements', () => {
  const ack = (value: unknown, ac: number, av: number, ad?: string): JsonObject =>
    (ad === undefined ? { value, ac, av } : { value, ac, av, ad }) as JsonObject;

  it.each([
    ['200, same value', ack(21, 200, 4), 'converged'],
    ['200, other value', ack(20, 200, 4), 'acknowledged'],
    ['202 in progress, old value', ack(20, 202, 4, 'updating'), 'acknowledged'],
    ['202, same value', ack(21, 202, 4), 'converged'],
    ['204, same value', ack(21, 204, 5), 'converged'],
    ['400', ack(21, 400, 4, 'out of range'), 'rejected'],
    ['500', ack(20, 500, 4), 'rejected'],
    ['100', ack(21, 100, 4), 'pending'],
    ['304', ack(21, 304, 4), 'pending'],
    ['200 for an older version', ack(21, 200, 3), 'pending'],
    ['400 for an older version', ack(21, 400, 3), 'pending'],
    ['202 for an older version', ack(21, 202, 3), 'pending'],
  ] as const)('%s → %s', (_name, reported, status) => {
    const e = only(twin({ target: 21 }, { target: reported }));
    expect(e.status).toBe(status);
    expect(e.desiredVersion).toBe(4);
    expect(e.reported).toEqual(reported['value']);
    const { ac, av, ad } = reported as { ac: number; av: number; ad?: string };
    expect(e.ack).toEqual(ad === undefined ? { ac, av } : { ac, av, ad });
    expect(e.since).toBe(status === 'pending' ? T1 : T2);
  });

  it('uses the leaf $lastUpdatedVersion, not the section $version, as the version to acknowledge', () => {
    const desiredMeta: JsonObject = {
      $lastUpdated: T3,
      $lastUpdatedVersion: 7,
      a: { $lastUpdated: T1, $lastUpdatedVersion: 3 },
      b: { $lastUpdated: T3, $lastUpdatedVersion: 7 },
    };
    const state = delta(twin({ a: 1, b: 2 }, { a: ack(1, 200, 3), b: ack(2, 200, 3) }, { version: 7, desiredMeta }));
    expect(state.entries.map((e) => [e.path[0], e.status, e.desiredVersion])).toEqual([
      ['a', 'converged', 3],
      ['b', 'pending', 7],
    ]);
    expect(state.desiredVersion).toBe(7);
  });

  it('falls back to the nearest metadata ancestor, then to desired.$version', () => {
    const desiredMeta: JsonObject = { $lastUpdated: T0, cfg: { $lastUpdated: T1, $lastUpdatedVersion: 5 } };
    const state = delta(twin({ cfg: { x: { y: 1 } }, top: 2 }, {}, { version: 8, desiredMeta }));
    expect(state.entries.map((e) => [e.path.join('.'), e.desiredVersion, e.since])).toEqual([
      ['cfg.x.y', 5, T1],
      ['top', 8, T0],
    ]);
  });

  it('handles components: the __t marker is not a property', () => {
    const state = delta(
      twin(
        { thermo: { __t: 'c', target: 21 }, light: { __t: 'c', on: true } },
        { thermo: { __t: 'c', target: ack(21, 200, 4, 'ok') }, light: { __t: 'c', on: ack(false, 202, 4) } },
      ),
    );
    expect(state.entries).toEqual([
      {
        path: ['light', 'on'],
        status: 'acknowledged',
        desired: true,
        reported: false,
        ack: { ac: 202, av: 4 },
        desiredVersion: 4,
        since: T2,
      },
      {
        path: ['thermo', 'target'],
        status: 'converged',
        desired: 21,
        reported: 21,
        ack: { ac: 200, av: 4, ad: 'ok' },
        desiredVersion: 4,
        since: T2,
      },
    ]);
    // A component the device has not reported yet is pending.
    expect(delta(twin({ thermo: { __t: 'c', target: 21 } }, {})).entries.map((e) => e.status)).toEqual(['pending']);
    // __t deeper than a component is an ordinary property.
    expect(delta(twin({ a: { b: { __t: 'c' } } }, {})).entries.map((e) => e.path)).toEqual([['a', 'b', '__t']]);
  });

  it('follows ack.value down from the nearest acknowledged ancestor', () => {
    const state = delta(
      twin({ cfg: { a: 1, b: { c: 2 }, l: [1, 2] } }, { cfg: ack({ a: 1, b: { c: 3 }, l: [1, 2] }, 200, 4) }),
    );
    expect(state.entries.map((e) => [e.path.join('.'), e.status, e.reported])).toEqual([
      ['cfg.a', 'converged', 1],
      ['cfg.b.c', 'acknowledged', 3],
      ['cfg.l', 'converged', [1, 2]],
    ]);
    expect(state.entries.every((e) => e.ack?.ac === 200)).toBe(true);
  });

  it('prefers the deepest ack on the path', () => {
    const reported = { x: { value: { y: ack(1, 400, 4) }, ac: 200, av: 4 } } as JsonObject;
    const e = only(twin({ x: { value: { y: 1 } } }, reported));
    expect(e).toMatchObject({ path: ['x', 'value', 'y'], status: 'rejected', reported: 1, ack: { ac: 400, av: 4 } });
  });

  it('takes since from the ack node, not from deeper reported metadata', () => {
    const reportedMeta: JsonObject = {
      $lastUpdated: T3,
      t: { $lastUpdated: T2, value: { $lastUpdated: T0 }, ac: { $lastUpdated: T2 } },
    };
    expect(only(twin({ t: 5 }, { t: ack(5, 200, 4) }, { reportedMeta })).since).toBe(T2);
    // The desired write is later than the ack: since is the desired time.
    const desiredMeta: JsonObject = { $lastUpdated: T3, $lastUpdatedVersion: 4 };
    expect(only(twin({ t: 5 }, { t: ack(5, 200, 4) }, { reportedMeta, desiredMeta })).since).toBe(T3);
  });

  it('recognises only exact ack objects', () => {
    expect(only(twin({ t: 1 }, { t: { value: 1, ac: 200, av: 4, extra: 1 } })).status).toBe('pending');
    expect(only(twin({ t: 1 }, { t: { value: 1, ac: '200', av: 4 } })).status).toBe('pending');
    expect(only(twin({ t: 1 }, { t: { value: 1, ac: 200, av: 4, ad: 5 } })).status).toBe('pending');
    expect(only(twin({ t: 1 }, { t: { ac: 200, av: 4 } })).status).toBe('pending');
    expect(only(twin({ t: 1 }, { t: { value: 1, ac: 200, av: 4, ad: 'fine' } })).status).toBe('converged');
  });

  it('can treat ack-shaped objects as plain values', () => {
    const t = twin({ t: { value: 1, ac: 200, av: 1 } }, { t: { value: 1, ac: 200, av: 1 } });
    // Read as an ack for version 1 while desired is at version 4: pending.
    expect(delta(t).entries.map((e) => e.status)).toEqual(['pending', 'pending', 'pending']);
    const plain = delta(t, { acks: false });
    expect(plain.entries.map((e) => e.status)).toEqual(['converged', 'converged', 'converged']);
    expect(plain.entries.map((e) => e.ack)).toEqual([undefined, undefined, undefined]);
    expect(delta(twin({ t: 1 }, { t: ack(1, 200, 4) }), { acks: false }).entries[0]?.status).toBe('pending');
  });
});

describe('delta: since', () => {
  it('compares timestamps as instants, whatever their precision', () => {
    const desiredMeta: JsonObject = { $lastUpdated: '2024-01-01T00:00:00.5Z', $lastUpdatedVersion: 1 };
    const early: JsonObject = { $lastUpdated: '2024-01-01T00:00:00.4999999Z' };
    const late: JsonObject = { $lastUpdated: '2024-01-01T00:00:00.50001Z' };
    expect(only(twin({ a: 1 }, { a: 1 }, { desiredMeta, reportedMeta: early })).since).toBe('2024-01-01T00:00:00.5Z');
    expect(only(twin({ a: 1 }, { a: 1 }, { desiredMeta, reportedMeta: late })).since).toBe(
      '2024-01-01T00:00:00.50001Z',
    );
    // No Z (older captures) is UTC; offsets are honoured; year 0001 ("never") is before everything.
    const noZ: JsonObject = { $lastUpdated: '2024-01-01T00:00:01' };
    expect(only(twin({ a: 1 }, { a: 1 }, { desiredMeta, reportedMeta: noZ })).since).toBe('2024-01-01T00:00:01');
    const offset: JsonObject = { $lastUpdated: '2024-01-01T01:00:00+01:00' };
    expect(only(twin({ a: 1 }, { a: 1 }, { desiredMeta, reportedMeta: offset })).since).toBe('2024-01-01T00:00:00.5Z');
    const never: JsonObject = { $lastUpdated: '0001-01-01T00:00:00Z' };
    expect(only(twin({ a: 1 }, { a: 1 }, { desiredMeta, reportedMeta: never })).since).toBe('2024-01-01T00:00:00.5Z');
  });

  it("uses IoT Hub's never when the document has no $lastUpdated", () => {
    const e = delta({ deviceId: 'd', properties: { desired: { a: 1 }, reported: { a: 1 } } }).entries[0];
    expect(e).toEqual({
      path: ['a'],
      status: 'converged',
      desired: 1,
      reported: 1,
      desiredVersion: 0,
      since: '0001-01-01T00:00:00Z',
    });
  });

  it('marks pending and acknowledged entries stale only when asked, from since', () => {
    const t = twin(
      { p: 1, a: 2, r: 3, c: 4 },
      {
        a: { value: 0, ac: 202, av: 4 },
        r: { value: 3, ac: 400, av: 4 },
        c: 4,
      },
    );
    const since = Date.UTC(2024, 0, 1, 0, 1); // T1 (pending)
    expect(delta(t, { now: since + 10 * 60_000 }).counts.stale).toBe(0); // no staleAfterMs
    const at = (now: number): string[] => delta(t, { now, staleAfterMs: 5 * 60_000 }).entries.map((e) => e.status);
    expect(at(since + 5 * 60_000 - 1)).toEqual(['acknowledged', 'converged', 'pending', 'rejected']);
    // acknowledged holds since T2, one minute after T1.
    expect(at(since + 5 * 60_000)).toEqual(['acknowledged', 'converged', 'stale', 'rejected']);
    const later = delta(t, { now: since + 6 * 60_000, staleAfterMs: 5 * 60_000 });
    expect(later.entries.map((e) => e.status)).toEqual(['stale', 'converged', 'stale', 'rejected']);
    expect(later.counts).toEqual({ pending: 0, acknowledged: 0, rejected: 1, converged: 1, stale: 2 });
    expect(Object.keys(later.counts)).toEqual([...DELTA_STATUSES]);
  });
});

describe('deltaKey / deltaEquals', () => {
  it('changes exactly when the delta changes', () => {
    const a = delta(twin({ fw: '1.2' }, { fw: '1.1' }));
    const b = delta(twin({ fw: '1.2' }, { fw: '1.1' }));
    const c = delta(twin({ fw: '1.2' }, { fw: '1.2' }));
    expect(deltaKey(a)).toBe(deltaKey(b));
    expect(deltaEquals(a, b)).toBe(true);
    expect(deltaEquals(a, c)).toBe(false);
    expect(deltaKey(a)).not.toBe(deltaKey(c));
  });

  it('runs the JSDoc example', () => {
    const state = delta({
      deviceId: 'dev1',
      properties: {
        desired: {
          fw: '1.2',
          $metadata: { $lastUpdated: '2024-01-01T00:00:00Z', $lastUpdatedVersion: 4 },
          $version: 4,
        },
        reported: {
          fw: { value: '1.2', ac: 200, av: 4 },
          $metadata: { $lastUpdated: '2024-01-01T00:01:00Z' },
          $version: 7,
        },
      },
    });
    expect(state.entries[0]?.status).toBe('converged');
    expect(state.entries[0]?.since).toBe('2024-01-01T00:01:00Z');
  });
});

describe('delta: properties', () => {
  // Keys that can never form an ack object ({ value, ac, av }) nor a $-key.
  const key = fc.string({ minLength: 1, maxLength: 4 }).filter((k) => !k.startsWith('$') && k !== 'value');
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', maxDepth: 4 },
      fc.oneof(
        fc.string({ maxLength: 5 }),
        fc.boolean(),
        fc.integer(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
      ),
      fc.array(tie('tree'), { maxLength: 3 }),
      fc.dictionary(key, tie('tree'), { maxKeys: 3, noNullPrototype: true }),
    ),
  }));
  const section = fc.dictionary(key, tree, { maxKeys: 5, noNullPrototype: true }) as fc.Arbitrary<JsonObject>;
  const time = fc
    .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
    .map((d) => d.toISOString());
  const anyTwin = fc
    .record({
      desired: section,
      reported: fc.oneof(
        section,
        fc.dictionary(key, fc.record({ value: tree, ac: fc.integer({ min: 100, max: 599 }), av: fc.nat(10) }), {
          maxKeys: 3,
          noNullPrototype: true,
        }) as fc.Arbitrary<JsonObject>,
      ),
      v: fc.nat(10),
      dt: time,
      rt: time,
    })
    .map(({ desired, reported, v, dt, rt }) =>
      twin(desired, reported, {
        version: v,
        desiredMeta: { $lastUpdated: dt, $lastUpdatedVersion: v },
        reportedMeta: { $lastUpdated: rt },
      }),
    );

  it('is deterministic: same (or cloned) input gives a deep-equal output and the same key', () => {
    fc.assert(
      fc.property(anyTwin, (t) => {
        const a = delta(t);
        const b = delta(structuredClone(t));
        expect(b).toEqual(a);
        expect(deltaKey(b)).toBe(deltaKey(a));
        expect(a.counts.pending + a.counts.acknowledged + a.counts.rejected + a.counts.converged).toBe(
          a.entries.length,
        );
        expect(a.converged).toBe(a.entries.every((e) => e.status === 'converged'));
        for (let i = 1; i < a.entries.length; i++) {
          expect(JSON.stringify(a.entries[i - 1]!.path) !== JSON.stringify(a.entries[i]!.path)).toBe(true);
        }
      }),
    );
  });

  it('is converged everywhere when reported equals desired (plain values)', () => {
    fc.assert(
      fc.property(section, time, time, (d, dt, rt) => {
        const state = delta(
          twin(d, structuredClone(d), {
            desiredMeta: { $lastUpdated: dt, $lastUpdatedVersion: 4 },
            reportedMeta: { $lastUpdated: rt },
          }),
        );
        expect(state.converged).toBe(true);
        expect(state.counts.converged).toBe(state.entries.length);
        for (const e of state.entries) {
          expect(e.reported).toEqual(e.desired);
          expect(e.since).toBe(dt > rt ? dt : rt);
        }
      }),
    );
  });
});
