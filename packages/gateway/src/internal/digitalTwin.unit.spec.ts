import { applyMergePatch, isTwinlogError, type JsonObject } from '@twinlog/core';
import fc from 'fast-check';
import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { desiredView, digitalTwinMergePatch, renderDigitalTwin } from './digitalTwin.ts';

const T1 = '2026-12-01T10:00:00.000Z';
const T2 = '2026-12-01T10:05:00.000Z';
const T3 = '2026-12-01T10:07:00.000Z';

/** A thermostat with a component, as a twin document renders it (docs/iot-hub.md, "IoT Plug and Play"). */
const twin = {
  deviceId: 'dev1',
  properties: {
    desired: {
      targetTemperature: 21,
      thermostat1: { __t: 'c', targetTemperature: 19.5 },
      $version: 4,
      $metadata: {
        $lastUpdated: T2,
        $lastUpdatedVersion: 4,
        targetTemperature: { $lastUpdated: T1, $lastUpdatedVersion: 2 },
        thermostat1: {
          $lastUpdated: T2,
          $lastUpdatedVersion: 4,
          __t: { $lastUpdated: T1, $lastUpdatedVersion: 3 },
          targetTemperature: { $lastUpdated: T2, $lastUpdatedVersion: 4 },
        },
      },
    },
    reported: {
      serialNumber: 'SN-1',
      targetTemperature: { value: 21, ac: 200, av: 2, ad: 'applied' },
      thermostat1: { __t: 'c', targetTemperature: { value: 18, ac: 202, av: 3 }, maxTemp: 25 },
      $version: 6,
      $metadata: {
        $lastUpdated: T3,
        serialNumber: { $lastUpdated: T1 },
        targetTemperature: { $lastUpdated: T3 },
        thermostat1: {
          $lastUpdated: T3,
          __t: { $lastUpdated: T1 },
          targetTemperature: { $lastUpdated: T3 },
          maxTemp: { $lastUpdated: T1 },
        },
      },
    },
  },
};

describe('renderDigitalTwin', () => {
  it('renders $dtId, $metadata.$model, reported values, and per writable property the desired value and the acknowledgement', () => {
    expect(renderDigitalTwin(twin, 'dtmi:com:example:TemperatureController;1')).toEqual({
      $dtId: 'dev1',
      serialNumber: 'SN-1',
      targetTemperature: 21,
      thermostat1: {
        maxTemp: 25,
        targetTemperature: 18,
        $metadata: {
          maxTemp: { lastUpdateTime: T1 },
          // an acknowledgement for an older desired version: shown as it is (the delta says pending)
          targetTemperature: { desiredValue: 19.5, desiredVersion: 4, ackVersion: 3, ackCode: 202, lastUpdateTime: T3 },
        },
      },
      $metadata: {
        $model: 'dtmi:com:example:TemperatureController;1',
        serialNumber: { lastUpdateTime: T1 },
        targetTemperature: {
          desiredValue: 21,
          desiredVersion: 2,
          ackVersion: 2,
          ackCode: 200,
          ackDescription: 'applied',
          lastUpdateTime: T3,
        },
      },
    });
  });

  it('shows a property only desired in $metadata without a value, a reported-only acknowledgement (ac 203), and a component only reported', () => {
    const dt = renderDigitalTwin(
      {
        deviceId: 'd',
        properties: {
          desired: {
            mode: 'eco',
            $version: 2,
            $metadata: { $lastUpdated: T2, $lastUpdatedVersion: 2, mode: { $lastUpdated: T2, $lastUpdatedVersion: 2 } },
          },
          reported: {
            interval: { value: 5, ac: 203, av: 0, ad: 'default' },
            info: { __t: 'c', fw: '1.0' },
            $version: 3,
            $metadata: {
              $lastUpdated: T1,
              interval: { $lastUpdated: T1 },
              info: { $lastUpdated: T1, fw: { $lastUpdated: T1 } },
            },
          },
        },
      },
      '',
    );
    expect(dt).toEqual({
      $dtId: 'd',
      interval: 5,
      info: { fw: '1.0', $metadata: { fw: { lastUpdateTime: T1 } } },
      $metadata: {
        $model: '',
        interval: { ackVersion: 0, ackCode: 203, ackDescription: 'default', lastUpdateTime: T1 },
        mode: { desiredValue: 'eco', desiredVersion: 2, lastUpdateTime: T2 },
      },
    });
  });

  it('an object-typed writable property is one property (its leaves share the acknowledgement)', () => {
    const dt = renderDigitalTwin(
      {
        deviceId: 'd',
        properties: {
          desired: {
            schedule: { start: 8, end: 18 },
            $version: 5,
            $metadata: {
              schedule: {
                $lastUpdated: T1,
                start: { $lastUpdated: T1, $lastUpdatedVersion: 3 },
                end: { $lastUpdated: T1, $lastUpdatedVersion: 5 },
              },
            },
          },
          reported: { schedule: { value: { start: 8, end: 18 }, ac: 200, av: 5 }, $version: 2, $metadata: {} },
        },
      },
      'm',
    );
    expect(dt).toEqual({
      $dtId: 'd',
      schedule: { start: 8, end: 18 },
      $metadata: {
        $model: 'm',
        schedule: {
          desiredValue: { start: 8, end: 18 },
          desiredVersion: 5,
          ackVersion: 5,
          ackCode: 200,
          lastUpdateTime: T1,
        },
      },
    });
  });
});

describe('digitalTwinMergePatch', () => {
  const desired = twin.properties.desired;
  const reported = twin.properties.reported;

  it('add, replace and remove on properties and component properties become one merge patch (removal = null)', () => {
    expect(
      digitalTwinMergePatch(desired, reported, [
        { op: 'replace', path: '/targetTemperature', value: 22 },
        { op: 'add', path: '/thermostat1/mode', value: 'heat' },
        { op: 'remove', path: '/thermostat1/targetTemperature' },
        { op: 'add', path: '/schedule', value: { start: 7 } },
      ]),
    ).toEqual({
      targetTemperature: 22,
      thermostat1: { mode: 'heat', targetTemperature: null },
      schedule: { start: 7 },
    });
  });

  it('adds a component with "$metadata": {} (the Azure SDKs\' marker), and a property to a component only the device reported', () => {
    expect(
      digitalTwinMergePatch({}, {}, [
        { op: 'add', path: '/thermostat2', value: { targetTemperature: 20, $metadata: {} } },
      ]),
    ).toEqual({
      thermostat2: { __t: 'c', targetTemperature: 20 },
    });
    expect(
      digitalTwinMergePatch({}, { info: { __t: 'c', fw: '1.0' } }, [{ op: 'add', path: '/info/fw', value: '2.0' }]),
    ).toEqual({
      info: { __t: 'c', fw: '2.0' },
    });
    // an untouched reported-only component is not written to desired
    expect(digitalTwinMergePatch({}, { info: { __t: 'c' } }, [{ op: 'add', path: '/x', value: 1 }])).toEqual({ x: 1 });
    // replacing a component keeps it a component; removing it removes it
    expect(
      digitalTwinMergePatch(desired, reported, [
        { op: 'replace', path: '/thermostat1', value: { targetTemperature: 17 } },
      ]),
    ).toEqual({ thermostat1: { targetTemperature: 17 } });
    expect(digitalTwinMergePatch(desired, reported, [{ op: 'remove', path: '/thermostat1' }])).toEqual({
      thermostat1: null,
    });
  });

  it('a patch that changes nothing is the empty merge patch', () => {
    expect(
      digitalTwinMergePatch(desired, reported, [{ op: 'replace', path: '/targetTemperature', value: 21 }]),
    ).toEqual({});
  });

  const refusals: [string, unknown, RegExp][] = [
    ['not an array', { op: 'add' }, /array of operations/],
    ['no operation', [], /no operation/],
    ['move', [{ op: 'move', from: '/a', path: '/b' }], /op move is not supported/],
    ['test', [{ op: 'test', path: '/targetTemperature', value: 21 }], /op test is not supported/],
    [
      'replace of a missing property',
      [{ op: 'replace', path: '/nope', value: 1 }],
      /operation 0 \(replace \/nope\): the path does not exist/,
    ],
    ['remove of a missing property', [{ op: 'remove', path: '/thermostat1/nope' }], /does not exist/],
    [
      'add under a missing parent',
      [{ op: 'add', path: '/nothing/prop', value: 1 }],
      /parent of the path does not exist/,
    ],
    ['$metadata', [{ op: 'add', path: '/$metadata/x', value: 1 }], /read-only/],
    ['$dtId', [{ op: 'replace', path: '/$dtId', value: 'x' }], /read-only/],
    ['the marker', [{ op: 'replace', path: '/thermostat1/__t', value: 'x' }], /component marker/],
    ['the root', [{ op: 'replace', path: '', value: {} }], /whole digital twin/],
    ['null', [{ op: 'add', path: '/a', value: null }], /null is not a property value/],
    ['a nested $ key', [{ op: 'add', path: '/a', value: { $b: 1 } }], /reserved/],
    ['no value', [{ op: 'add', path: '/a' }], /needs a value/],
    ['a path without /', [{ op: 'add', path: 'a', value: 1 }], /must start with \//],
    ['__proto__', [{ op: 'add', path: '/__proto__/x', value: 1 }], /not a valid property name/],
    [
      'a second operation that fails',
      [
        { op: 'add', path: '/a', value: 1 },
        { op: 'remove', path: '/b' },
      ],
      /operation 1 \(remove \/b\)/,
    ],
  ];
  it.each(refusals)('refuses %s with a clear 400 (ArgumentInvalid)', (_, body, message) => {
    let caught: unknown;
    try {
      digitalTwinMergePatch(desired, reported, body);
    } catch (e) {
      caught = e;
    }
    expect(isTwinlogError(caught, 'PATCH_NOT_OBJECT')).toBe(true);
    expect((caught as Error).message).toMatch(message);
    expect((caught as { iotHub?: { status: number } }).iotHub?.status).toBe(400);
    expect((caught as Error).message).not.toContain(';'); // the SDK keeps one ;-segment (docs/iot-hub.md, "Errors")
  });

  // --- the property: the merge patch does to desired what the JSON Patch does to its view ---------

  const key = fc.constantFrom('a', 'b', 'c', 'mode', 'fw');
  const scalar = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 4 }), fc.boolean());
  const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      scalar,
      fc.array(scalar, { maxLength: 3 }),
      fc.dictionary(key, tie('v'), { maxKeys: 3 }),
    ),
  })).v;
  const section = fc.dictionary(
    fc.constantFrom('a', 'b', 'comp1', 'comp2'),
    fc.oneof(
      value,
      fc.dictionary(key, value, { maxKeys: 3 }).map((o) => ({ __t: 'c', ...(o as object) })),
    ),
    {
      maxKeys: 4,
    },
  );

  /** Operations aimed at members that exist (replace, remove, add under them) and at new ones. */
  const operations = (view: JsonObject): fc.Arbitrary<unknown[]> => {
    const paths: string[] = ['/a', '/b', '/new'];
    for (const [k, v] of Object.entries(view)) {
      paths.push(`/${k}`);
      if (v !== null && typeof v === 'object' && !Array.isArray(v))
        for (const inner of [...Object.keys(v).filter((x) => x !== '__t'), 'x']) paths.push(`/${k}/${inner}`);
    }
    const op = fc.record({ op: fc.constantFrom('add', 'replace', 'remove'), path: fc.constantFrom(...paths), value });
    return fc
      .array(op, { minLength: 1, maxLength: 4 })
      .map((ops) => ops.map((o) => (o.op === 'remove' ? { op: o.op, path: o.path } : o)));
  };

  const isComponentValue = (v: unknown): boolean =>
    typeof v === 'object' && v !== null && (v as Record<string, unknown>)['__t'] === 'c';

  it('property: applying the merge patch to desired equals applying the JSON Patch to the desired view with fast-json-patch', () => {
    fc.assert(
      fc.property(
        section.chain((d) => fc.tuple(fc.constant(d as JsonObject), operations(desiredView(d)))),
        ([desiredSection, ops]) => {
          const view = desiredView(desiredSection);
          // replacing a whole component keeps it a component (its marker is kept): not a plain JSON Patch
          fc.pre(
            !ops.some(
              (o) =>
                (o as { op: string }).op === 'replace' &&
                (o as { path: string }).path.split('/').length === 2 &&
                typeof (o as { value?: unknown }).value === 'object' &&
                !Array.isArray((o as { value?: unknown }).value) &&
                isComponentValue(view[(o as { path: string }).path.slice(1)]),
            ),
          );
          let expected: unknown;
          try {
            expected = jsonPatch.applyPatch(
              view,
              structuredClone(ops) as jsonPatch.Operation[],
              true,
              false,
            ).newDocument;
          } catch {
            expected = 'refused';
          }
          let merge: unknown;
          try {
            merge = digitalTwinMergePatch({ ...desiredSection, $version: 3 }, {}, ops);
          } catch (e) {
            expect(isTwinlogError(e, 'PATCH_NOT_OBJECT')).toBe(true);
            merge = 'refused';
          }
          // refused exactly when fast-json-patch refuses
          expect(merge === 'refused').toBe(expected === 'refused');
          if (merge !== 'refused') expect(applyMergePatch(view, merge as JsonObject)).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});
