/**
 * The conformance table: queries over a small fixed fleet with the results docs/iot-hub.md, "Queries",
 * implies. Each case names the subsection of "Queries" it comes from (language, conditions,
 * functions, names and examples: "Query language" and the three after it); "twinlog" marks a choice
 * where IoT Hub's documentation is silent (documented on `evaluate` and in `internal/compileExpr.ts`).
 * Shared by this package's evaluator tests and the read model's (which runs every case through
 * SQLite). Rows and ids are in the fleet's input order; a read model that returns twins in another
 * order compares as sets.
 */
import type { TwinDocument, TwinlogErrorCode } from '@twinlog/core';
import type { QueryRow } from '../evaluate.ts';

// ── the fleet ──────────────────────────────────────────────────────────────────────────────────

interface TwinInit {
  status?: 'enabled' | 'disabled';
  tags?: Record<string, unknown>;
  desired?: Record<string, unknown>;
  reported?: Record<string, unknown>;
  root?: Record<string, unknown>;
}

/** A twin as GET /twins/{id} returns it (docs/iot-hub.md "The twin document"), with extra root fields. */
function twin(deviceId: string, init: TwinInit = {}): TwinDocument & Record<string, unknown> {
  return {
    deviceId,
    etag: 'AAAAAAAAAAc=',
    version: 5,
    status: init.status ?? 'enabled',
    connectionState: 'Disconnected',
    lastActivityTime: '2023-08-24T12:39:49.5076305Z',
    ...init.root,
    tags: (init.tags ?? {}) as TwinDocument['tags'],
    properties: {
      desired: { ...init.desired, $metadata: { $lastUpdated: '2023-10-12T13:38:52.3108419Z' }, $version: 4 },
      reported: { ...init.reported, $metadata: { $lastUpdated: '2023-08-17T08:24:40.736671Z' }, $version: 7 },
    },
  };
}

export const FLEET = [
  twin('d1', {
    root: {
      connectionState: 'Connected',
      x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
      capabilities: { iotEdge: false },
      configurations: { 'firmware-update': { status: 'Applied' } },
    },
    tags: { location: { region: 'US', plant: 'Redmond43' }, group: 'alpha', 'floor-no': 3 },
    desired: { telemetryConfig: { sendFrequencyInSecs: 300 }, fw: '1.2' },
    reported: {
      battery: 80,
      connectivity: 'wired',
      telemetryConfig: { status: 'Success', sendFrequencyInSecs: 300 },
      temp: 21.5,
    },
  }),
  twin('d2', {
    root: { configurations: { 'firmware-update': { status: 'Targeted' } } },
    tags: { location: { region: 'US' }, group: 'beta', flag: true, 'a.b': 1 },
    reported: { battery: 15, connectivity: 'wifi', telemetryConfig: { status: 'Pending', sendFrequencyInSecs: 30 } },
  }),
  twin('d3', {
    root: { capabilities: { iotEdge: true } },
    tags: { location: { region: 'EU' }, group: 'alpha', flag: false },
    reported: { battery: '50', connectivity: 'cellular', telemetryConfig: { status: 'Success' } },
  }),
  twin('d4', { status: 'disabled' }),
  twin('sensor-05', {
    tags: { location: { region: 'EU' }, readings: [1, 2, 3], meta: { owner: 'ops' }, 'floor-no': '3', level: 1 },
    reported: { battery: 100, temp: -4 },
  }),
  twin("it's", {
    tags: { location: { region: 'us' }, note: "O'Brien", 'floor-no': 3 },
    reported: { battery: 0, temp: 0 },
  }),
  twin('d7', {
    tags: { location: 'US', level: '1' },
    reported: { battery: true, connectivity: ['wired', 'wifi'] },
  }),
  twin('Edge-1', {
    root: { capabilities: { iotEdge: true }, x509Thumbprint: { primaryThumbprint: 'ABC', secondaryThumbprint: null } },
    tags: { location: { region: 'US' } },
    reported: { battery: 42.5, connectivity: { type: 'cellular' } },
  }),
];
export const ALL = FLEET.map((t) => t.deviceId);
const except = (...ids: string[]): string[] => ALL.filter((id) => !ids.includes(id));

/** Module twins (docs/iot-hub.md "Query language" `devices.modules`). */
export const MODULES = [
  { deviceId: 'd1', moduleId: 'm1', properties: { reported: { status: 'scanning' }, desired: {} }, tags: {} },
  { deviceId: 'd2', moduleId: 'm1', properties: { reported: { status: 'idle' }, desired: {} }, tags: {} },
  { deviceId: 'd3', moduleId: 'm2', properties: { reported: { status: 'scanning' }, desired: {} }, tags: {} },
];

/** `devices.jobs` rows (docs/iot-hub.md "Escaped names and query examples"). */
export const JOBS = [
  { deviceId: 'd1', jobId: 'j1', jobType: 'scheduleUpdateTwin', status: 'completed' },
  { deviceId: 'd1', jobId: 'j2', jobType: 'scheduleDeviceMethod', status: 'running' },
  { deviceId: 'd2', jobId: 'j1', jobType: 'scheduleUpdateTwin', status: 'completed' },
];

// ── the table ──────────────────────────────────────────────────────────────────────────────────

export type ConformanceCase =
  | { q: string; ids: string[]; ref: string; over?: readonly object[] }
  | { q: string; rows: QueryRow[]; ref: string; over?: readonly object[] }
  | { q: string; error: TwinlogErrorCode; at: number | { line: number; column: number }; ref: string };

export const W = (where: string): string => `SELECT * FROM devices WHERE ${where}`;

export const CONFORMANCE_CASES: ConformanceCase[] = [
  // docs/iot-hub.md "Escaped names and query examples" reference queries
  { ref: 'names and examples', q: 'SELECT * FROM devices', ids: ALL },
  {
    ref: 'names and examples',
    q: W("tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60"),
    ids: ['d1'],
  },
  {
    ref: 'names and examples (an array value is not a primitive, conditions)',
    q: W("properties.reported.connectivity IN ['wired', 'wifi']"),
    ids: ['d1', 'd2'],
  },
  {
    ref: 'names and examples',
    q: W('is_defined(properties.reported.connectivity)'),
    ids: ['d1', 'd2', 'd3', 'd7', 'Edge-1'],
  },
  {
    ref: 'names and examples',
    over: MODULES,
    q: "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['d1','d2']",
    ids: ['d1'],
  },
  {
    ref: 'names and examples',
    q: "SELECT deviceId FROM devices WHERE configurations.[[firmware-update]].status = 'Applied'",
    rows: [{ deviceId: 'd1' }],
  },
  {
    ref: 'names and examples',
    over: JOBS,
    q: "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'd1' AND devices.jobs.jobType = 'scheduleUpdateTwin'",
    rows: [JOBS[0]!],
  },

  // docs/iot-hub.md "Query conditions" root-field casing and prefixes
  {
    ref: 'conditions case',
    q: "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled'",
    rows: except('d4').map((deviceId) => ({ deviceId, lastActivityTime: '2023-08-24T12:39:49.5076305Z' })),
  },
  { ref: 'conditions prefixes', q: W('devices.capabilities.iotEdge = true'), ids: ['d3', 'Edge-1'] },
  {
    ref: 'conditions case (keywords, root fields; properties.desired/reported: twinlog)',
    q: "select * FROM Devices wHeRe TAGS.location.region = 'EU' and Properties.Reported.battery = 100",
    ids: ['sensor-05'],
  },
  {
    ref: 'conditions case (below the root, names are case-sensitive: twinlog)',
    q: "SELECT DEVICEID AS id, tags.LOCATION.region FROM devices WHERE deviceId = 'd1'",
    rows: [{ id: 'd1' }],
  },

  // docs/iot-hub.md "Query conditions" truth: only Boolean true holds
  { ref: 'conditions truth', q: W('tags.flag'), ids: ['d2'] },
  { ref: 'conditions truth', q: W('tags.location.region'), ids: [] },
  { ref: 'conditions truth', q: W('tags.location'), ids: [] },
  { ref: 'conditions truth', q: W('true'), ids: ALL },
  { ref: 'conditions truth', q: W('null'), ids: [] },
  { ref: 'conditions truth', q: W('undefined'), ids: [] },
  { ref: 'conditions truth', q: W('1'), ids: [] },

  // comparisons: primitives of one type only (docs/iot-hub.md "Query conditions"; no coercion: twinlog)
  { ref: 'conditions comparisons', q: W('properties.reported.battery = 80'), ids: ['d1'] },
  { ref: 'conditions comparisons', q: W("properties.reported.battery = '50'"), ids: ['d3'] },
  { ref: 'conditions comparisons, no coercion', q: W('properties.reported.battery = 50'), ids: [] },
  {
    ref: 'conditions comparisons, no coercion',
    q: W('properties.reported.battery > 20'),
    ids: ['d1', 'sensor-05', 'Edge-1'],
  },
  {
    ref: 'conditions comparisons: != across types is undefined',
    q: W('properties.reported.battery != 80'),
    ids: ['d2', 'sensor-05', "it's", 'Edge-1'],
  },
  { ref: 'language binop <>', q: W('properties.reported.battery <> 80'), ids: ['d2', 'sensor-05', "it's", 'Edge-1'] },
  { ref: 'language binop <=', q: W('properties.reported.battery <= 15'), ids: ['d2', "it's"] },
  { ref: 'language binop >=', q: W('properties.reported.battery >= 100'), ids: ['sensor-05'] },
  { ref: 'language binop <', q: W('properties.reported.temp < 0'), ids: ['sensor-05'] },
  {
    ref: 'conditions comparisons: strings ordinal, case-sensitive (twinlog)',
    q: W("deviceId < 'd3'"),
    ids: ['d1', 'd2', 'Edge-1'],
  },
  {
    ref: 'conditions comparisons: case-sensitive values',
    q: W("tags.location.region = 'US'"),
    ids: ['d1', 'd2', 'Edge-1'],
  },
  {
    ref: 'conditions comparisons: objects never compare (only d7 has a primitive location)',
    q: W('tags.location = tags.location'),
    ids: ['d7'],
  },
  {
    ref: 'conditions comparisons: both sides primitive',
    q: W(
      'properties.desired.telemetryConfig.sendFrequencyInSecs = properties.reported.telemetryConfig.sendFrequencyInSecs',
    ),
    ids: ['d1'],
  },

  // null and undefined
  { ref: 'language constant null', q: W('x509Thumbprint.primaryThumbprint = null'), ids: ['d1'] },
  {
    ref: 'conditions: null != string is a cross-type comparison',
    q: W('x509Thumbprint.primaryThumbprint != null'),
    ids: [],
  },
  { ref: 'functions IS_NULL', q: W('IS_NULL(x509Thumbprint.primaryThumbprint)'), ids: ['d1'] },
  { ref: 'functions IS_NULL: undefined is not null', q: W('IS_NULL(tags.nothing)'), ids: [] },
  { ref: 'functions IS_NULL', q: W('NOT IS_NULL(x509Thumbprint.primaryThumbprint)'), ids: except('d1') },
  { ref: 'language constant undefined', q: W('tags.missing = undefined'), ids: [] },
  { ref: 'conditions truth: NOT undefined is undefined', q: W('NOT (tags.missing = 1)'), ids: [] },
  { ref: 'conditions truth', q: W('tags.missing != 1'), ids: [] },
  {
    ref: 'conditions truth: NOT of a cross-type comparison',
    q: W('NOT (properties.reported.battery = 80)'),
    ids: ['d2', 'sensor-05', "it's", 'Edge-1'],
  },

  // AND / OR / NOT: three-valued (twinlog: Kleene)
  { ref: 'language OR', q: W('tags.flag = true OR tags.missing = 1'), ids: ['d2'] },
  { ref: 'language OR: true OR undefined', q: W('tags.missing = 1 OR true'), ids: ALL },
  { ref: 'language AND: undefined AND false', q: W('tags.missing = 1 AND false'), ids: [] },
  { ref: 'language NOT: NOT (undefined AND false) = NOT false', q: W('NOT (tags.missing = 1 AND false)'), ids: ALL },
  { ref: 'language NOT: NOT (undefined OR false) = NOT undefined', q: W('NOT (tags.missing = 1 OR false)'), ids: [] },
  {
    ref: 'language precedence: AND binds tighter than OR',
    q: W("tags.[[group]] = 'alpha' OR tags.[[group]] = 'beta' AND tags.flag = true"),
    ids: ['d1', 'd2', 'd3'],
  },
  {
    ref: 'language parentheses',
    q: W("(tags.[[group]] = 'alpha' OR tags.[[group]] = 'beta') AND tags.flag = true"),
    ids: ['d2'],
  },
  { ref: 'language precedence: NOT applies to the comparison', q: W('NOT tags.flag = true'), ids: ['d3'] },

  // IN / NIN (docs/iot-hub.md "Query conditions": an array constant)
  { ref: 'conditions IN', q: W("deviceId IN ['d1', 'd2', 'nope']"), ids: ['d1', 'd2'] },
  { ref: 'conditions NIN', q: W("deviceId NIN ['d1','d2']"), ids: except('d1', 'd2') },
  { ref: 'conditions NIN: undefined is not in and not not-in', q: W("tags.missing NIN ['x']"), ids: [] },
  { ref: 'conditions IN: per-type equality', q: W("properties.reported.battery IN [80, '50']"), ids: ['d1', 'd3'] },
  { ref: 'conditions IN: only primitives', q: W("tags.location IN ['US']"), ids: ['d7'] },
  {
    ref: 'conditions NIN: arrays and objects are neither',
    q: W("properties.reported.connectivity NIN ['wired']"),
    ids: ['d2', 'd3'],
  },
  { ref: 'language NOT IN (twinlog: same as NIN)', q: W("deviceId NOT IN ['d1']"), ids: except('d1') },
  { ref: 'language null in an array constant', q: W('x509Thumbprint.primaryThumbprint IN [null]'), ids: ['d1'] },

  // arithmetic (docs/iot-hub.md "Query language" binops; numbers only: twinlog)
  { ref: 'language +', q: W('properties.reported.battery + 20 = 100'), ids: ['d1'] },
  { ref: 'language *', q: W('properties.reported.battery * 2 > 150'), ids: ['d1', 'sensor-05'] },
  { ref: 'language %', q: W('properties.reported.battery % 2 = 1'), ids: ['d2'] },
  { ref: 'language /: division by zero is undefined', q: W('IS_DEFINED(properties.reported.battery / 0)'), ids: [] },
  { ref: 'language unary -', q: W('-properties.reported.temp = 4'), ids: ['sensor-05'] },
  { ref: 'language - with a negative constant', q: W('properties.reported.battery - -20 = 35'), ids: ['d2'] },
  { ref: 'language + on strings is undefined', q: W("IS_DEFINED(tags.note + 'x')"), ids: [] },
  { ref: 'language precedence: * before +', q: W('1 + properties.reported.battery * 2 = 31'), ids: ['d2'] },

  // type functions (docs/iot-hub.md "Query functions and grouping"; routing functions accepted by twinlog)
  { ref: 'functions IS_DEFINED', q: W('IS_DEFINED(tags.location)'), ids: except('d4') },
  { ref: 'functions IS_BOOL', q: W('IS_BOOL(properties.reported.battery)'), ids: ['d7'] },
  {
    ref: 'functions IS_NUMBER',
    q: W('IS_NUMBER(properties.reported.battery)'),
    ids: ['d1', 'd2', 'sensor-05', "it's", 'Edge-1'],
  },
  { ref: 'functions IS_STRING', q: W('IS_STRING(properties.reported.battery)'), ids: ['d3'] },
  { ref: 'functions IS_OBJECT', q: W('IS_OBJECT(tags.location)'), ids: except('d4', 'd7') },
  { ref: 'functions IS_OBJECT', q: W('is_object(tags)'), ids: ALL },
  { ref: 'functions IS_ARRAY', q: W('IS_ARRAY(properties.reported.connectivity)'), ids: ['d7'] },
  { ref: 'functions IS_PRIMITIVE', q: W('IS_PRIMITIVE(properties.reported.connectivity)'), ids: ['d1', 'd2', 'd3'] },
  { ref: 'functions IS_PRIMITIVE: undefined is not', q: W('IS_PRIMITIVE(tags.missing)'), ids: [] },

  // string functions (docs/iot-hub.md "Query functions and grouping")
  { ref: 'functions STARTSWITH', q: W("STARTSWITH(deviceId, 'd')"), ids: ['d1', 'd2', 'd3', 'd4', 'd7'] },
  { ref: 'functions STARTSWITH is case-sensitive', q: W("STARTSWITH(deviceId, 'D')"), ids: [] },
  {
    ref: 'functions STARTSWITH on a string value only',
    q: W("STARTSWITH(properties.reported.battery, '5')"),
    ids: ['d3'],
  },
  { ref: 'functions ENDSWITH', q: W("ENDSWITH(deviceId, '-05')"), ids: ['sensor-05'] },
  { ref: 'functions CONTAINS (routing list; twinlog accepts it)', q: W("CONTAINS(tags.note, 'Bri')"), ids: ["it's"] },
  { ref: 'functions: NOT of undefined', q: W("NOT STARTSWITH(tags.missing, 'a')"), ids: [] },

  // [[ ]] escapes (docs/iot-hub.md "Escaped names and query examples")
  { ref: 'names and examples escapes', q: W('tags.[[floor-no]] = 3'), ids: ['d1', "it's"] },
  { ref: 'names and examples escapes: keywords', q: W("tags.[[group]] = 'alpha'"), ids: ['d1', 'd3'] },
  {
    ref: 'names and examples escapes: every segment',
    q: W("[[tags]].[[location]].[[region]] = 'EU'"),
    ids: ['d3', 'sensor-05'],
  },
  { ref: 'names and examples escapes: literal, no root casing (twinlog)', q: W("[[DeviceId]] = 'd1'"), ids: [] },
  { ref: 'names and examples escapes: a dot inside a name', q: W('tags.[[a.b]] = 1'), ids: ['d2'] },

  // literals (docs/iot-hub.md "Query language")
  { ref: "language escape \\'", q: W("tags.note = 'O\\'Brien'"), ids: ["it's"] },
  { ref: 'language "string"', q: W('deviceId = "it\'s"'), ids: ["it's"] },
  { ref: 'language escape \\uXXXX', q: W("deviceId = 'it\\u0027s'"), ids: ["it's"] },
  { ref: 'language escape \\"', q: W('tags.note = "O\\"Brien" OR tags.note = "O\'Brien"'), ids: ["it's"] },
  { ref: 'language 0xHEX', q: W('properties.reported.battery = 0x50'), ids: ['d1'] },
  { ref: 'language decimal with exponent', q: W('properties.reported.battery = 1e2'), ids: ['sensor-05'] },
  { ref: 'language decimal', q: W('properties.reported.battery = 42.5'), ids: ['Edge-1'] },
  { ref: 'language -0 equals 0', q: W('properties.reported.temp = -0'), ids: ["it's"] },

  // projections
  {
    ref: 'conditions projection, aliases',
    q: "SELECT deviceId, tags.location.region, properties.reported.battery AS b FROM devices WHERE tags.[[group]] = 'alpha'",
    rows: [
      { deviceId: 'd1', region: 'US', b: 80 },
      { deviceId: 'd3', region: 'EU', b: '50' },
    ],
  },
  {
    ref: 'conditions projection of objects and mixed types',
    q: "SELECT tags.location FROM devices WHERE deviceId IN ['d1', 'd7']",
    rows: [{ location: { region: 'US', plant: 'Redmond43' } }, { location: 'US' }],
  },
  {
    ref: 'projection: undefined left out (twinlog)',
    q: "SELECT deviceId, tags.flag FROM devices WHERE deviceId IN ['d1','d2']",
    rows: [{ deviceId: 'd1' }, { deviceId: 'd2', flag: true }],
  },
  {
    ref: 'projection: all undefined gives {} (twinlog)',
    q: "SELECT tags.missing FROM devices WHERE deviceId = 'd4'",
    rows: [{}],
  },
  {
    ref: 'names and examples escaped alias',
    q: "SELECT deviceId AS [[device id]] FROM devices WHERE deviceId = 'd1'",
    rows: [{ 'device id': 'd1' }],
  },
  {
    ref: 'twin document $version is readable',
    q: "SELECT properties.desired.$version AS v FROM devices WHERE deviceId = 'd1'",
    rows: [{ v: 4 }],
  },
  {
    ref: 'language module projection with the collection prefix',
    over: MODULES,
    q: "SELECT deviceId, moduleId FROM devices.modules WHERE devices.modules.moduleId = 'm1'",
    rows: [
      { deviceId: 'd1', moduleId: 'm1' },
      { deviceId: 'd2', moduleId: 'm1' },
    ],
  },

  // TOP (docs/iot-hub.md "Query language")
  { ref: 'language TOP', q: 'SELECT TOP 2 * FROM devices', ids: ['d1', 'd2'] },
  {
    ref: 'language TOP after WHERE',
    q: "SELECT TOP 2 deviceId FROM devices WHERE tags.location.region = 'EU'",
    rows: [{ deviceId: 'd3' }, { deviceId: 'sensor-05' }],
  },
  { ref: 'language TOP 0', q: 'SELECT TOP 0 * FROM devices', ids: [] },

  // aggregates and GROUP BY (docs/iot-hub.md "Query functions and grouping")
  {
    ref: 'functions COUNT',
    q: 'SELECT COUNT() AS totalNumberOfDevices FROM devices',
    rows: [{ totalNumberOfDevices: 8 }],
  },
  {
    ref: 'functions COUNT over nothing, unaliased $1',
    q: "SELECT COUNT() FROM devices WHERE tags.location.region = 'Mars'",
    rows: [{ $1: 0 }],
  },
  {
    ref: 'functions grouping (the documented example); undefined group first (twinlog)',
    q: 'SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status',
    rows: [
      { numberOfDevices: 5 },
      { status: 'Pending', numberOfDevices: 1 },
      { status: 'Success', numberOfDevices: 2 },
    ],
  },
  {
    ref: 'language SUM/AVG over numbers only; MIN least number, MAX greatest string (twinlog)',
    q: 'SELECT SUM(properties.reported.battery) AS s, AVG(properties.reported.battery) AS a, MIN(properties.reported.battery) AS lo, MAX(properties.reported.battery) AS hi FROM devices',
    rows: [{ s: 237.5, a: 47.5, lo: 0, hi: '50' }],
  },
  {
    ref: 'language MIN/MAX on strings, ordinal (twinlog)',
    q: 'SELECT MIN(deviceId) AS first, MAX(deviceId) AS last FROM devices',
    rows: [{ first: 'Edge-1', last: 'sensor-05' }],
  },
  {
    ref: 'aggregates with no usable value are left out (twinlog)',
    q: 'SELECT SUM(tags.note) AS s, AVG(tags.missing) AS a, COUNT() AS n FROM devices',
    rows: [{ n: 8 }],
  },
  {
    ref: 'functions unaliased aggregates $1, $2',
    q: "SELECT COUNT(), SUM(properties.reported.battery) FROM devices WHERE deviceId IN ['d1','d2']",
    rows: [{ $1: 2, $2: 95 }],
  },
  {
    ref: 'GROUP BY: 1 and "1" are different groups (twinlog)',
    q: 'SELECT tags.level AS level, COUNT() AS n FROM devices GROUP BY tags.level',
    rows: [{ n: 6 }, { level: 1, n: 1 }, { level: '1', n: 1 }],
  },
  {
    ref: 'conditions case in GROUP BY',
    q: 'SELECT Status, COUNT() AS n FROM devices GROUP BY STATUS',
    rows: [
      { status: 'disabled', n: 1 },
      { status: 'enabled', n: 7 },
    ],
  },
  {
    ref: 'functions GROUP BY with WHERE and TOP',
    q: 'SELECT TOP 1 tags.location.region AS r, COUNT() AS n FROM devices WHERE IS_DEFINED(tags.location.region) GROUP BY tags.location.region',
    rows: [{ r: 'EU', n: 2 }],
  },
  {
    ref: 'GROUP BY without aggregates lists distinct values',
    q: 'SELECT tags.[[group]] FROM devices GROUP BY tags.[[group]]',
    rows: [{}, { group: 'alpha' }, { group: 'beta' }],
  },
  {
    ref: 'GROUP BY object values: by content, objects after strings (twinlog)',
    q: 'SELECT COUNT() AS n FROM devices GROUP BY tags.location',
    rows: [{ n: 1 }, { n: 1 }, { n: 1 }, { n: 2 }, { n: 2 }, { n: 1 }],
  },
  {
    ref: 'functions AVG per group; a group with no numbers has no AVG (twinlog)',
    q: 'SELECT tags.location.region AS r, AVG(properties.reported.battery) AS avg FROM devices GROUP BY tags.location.region',
    rows: [{}, { r: 'EU', avg: 100 }, { r: 'US', avg: 137.5 / 3 }, { r: 'us', avg: 0 }],
  },
  {
    ref: 'conditions aggregates over modules',
    over: MODULES,
    q: "SELECT COUNT() AS n FROM devices.modules WHERE properties.reported.status = 'scanning'",
    rows: [{ n: 2 }],
  },

  // errors, with positions
  { ref: 'language', q: 'SELECT * FROM devices WHERE', error: 'QUERY_SYNTAX', at: 27 },
  {
    ref: 'names and examples keywords need [[ ]]',
    q: "SELECT * FROM devices WHERE tags.group = 'x'",
    error: 'QUERY_SYNTAX',
    at: 33,
  },
  {
    ref: 'language ORDER BY rejected',
    q: 'SELECT * FROM devices ORDER BY deviceId',
    error: 'QUERY_UNSUPPORTED',
    at: 22,
  },
  {
    ref: 'functions STARTS_WITH is invalid',
    q: "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'x')",
    error: 'QUERY_SYNTAX',
    at: 28,
  },
  {
    ref: 'functions routing-only function',
    q: "SELECT * FROM devices WHERE LOWER(deviceId) = 'x'",
    error: 'QUERY_UNSUPPORTED',
    at: 28,
  },
  { ref: 'functions no LIKE', q: "SELECT * FROM devices WHERE deviceId LIKE 'x%'", error: 'QUERY_SYNTAX', at: 37 },
  { ref: 'language string', q: "SELECT * FROM devices WHERE deviceId = 'abc", error: 'QUERY_SYNTAX', at: 39 },
  {
    ref: 'language escapes: only \\\' \\" \\\\ \\uXXXX',
    q: "SELECT * FROM devices WHERE x = 'a\\nb'",
    error: 'QUERY_SYNTAX',
    at: 34,
  },
  {
    ref: 'language \\u needs four hex digits',
    q: "SELECT * FROM devices WHERE x = '\\u12'",
    error: 'QUERY_SYNTAX',
    at: 33,
  },
  {
    ref: 'line and column',
    q: 'SELECT *\nFROM devices\nWHERE x = = 1',
    error: 'QUERY_SYNTAX',
    at: { line: 3, column: 11 },
  },
  {
    ref: 'line and column after \\r\\n',
    q: 'SELECT *\r\nFROM devices\r\n  WHERE (x = 1',
    error: 'QUERY_SYNTAX',
    at: { line: 3, column: 15 },
  },
  { ref: 'language collection', q: 'SELECT * FROM things', error: 'QUERY_SYNTAX', at: 14 },
  {
    ref: 'functions a path beside an aggregate needs GROUP BY',
    q: 'SELECT deviceId, COUNT() FROM devices',
    error: 'QUERY_SYNTAX',
    at: 7,
  },
  {
    ref: 'functions GROUP BY mismatch',
    q: 'SELECT tags.x AS a, COUNT() AS n FROM devices GROUP BY tags.y',
    error: 'QUERY_SYNTAX',
    at: 7,
  },
  {
    ref: 'functions SELECT * cannot be grouped',
    q: 'SELECT * FROM devices GROUP BY status',
    error: 'QUERY_SYNTAX',
    at: 7,
  },
  {
    ref: 'conditions GROUP BY on device twins only',
    q: 'SELECT COUNT() FROM devices.modules GROUP BY moduleId',
    error: 'QUERY_UNSUPPORTED',
    at: 36,
  },
  {
    ref: 'conditions devices.jobs: no projection',
    q: 'SELECT deviceId FROM devices.jobs',
    error: 'QUERY_UNSUPPORTED',
    at: 7,
  },
  {
    ref: 'conditions devices.jobs: no twin condition',
    q: 'SELECT * FROM devices.jobs WHERE tags.x = 1',
    error: 'QUERY_UNSUPPORTED',
    at: 33,
  },
  { ref: 'conditions no JOIN', q: 'SELECT * FROM devices JOIN devices.modules', error: 'QUERY_UNSUPPORTED', at: 22 },
  {
    ref: 'conditions IN takes an array constant',
    q: "SELECT * FROM devices WHERE x IN 'a'",
    error: 'QUERY_SYNTAX',
    at: 33,
  },
  {
    ref: 'conditions IN takes constants only',
    q: 'SELECT * FROM devices WHERE x IN [tags.y]',
    error: 'QUERY_SYNTAX',
    at: 34,
  },
  { ref: 'comparisons do not chain', q: 'SELECT * FROM devices WHERE a = 1 = 1', error: 'QUERY_SYNTAX', at: 34 },
  { ref: 'functions arity', q: 'SELECT * FROM devices WHERE IS_DEFINED(a, b)', error: 'QUERY_SYNTAX', at: 28 },
  {
    ref: 'language aggregates only in SELECT',
    q: 'SELECT * FROM devices WHERE COUNT() > 1',
    error: 'QUERY_SYNTAX',
    at: 28,
  },
  {
    ref: 'language count() takes no argument',
    q: 'SELECT COUNT(deviceId) FROM devices',
    error: 'QUERY_SYNTAX',
    at: 13,
  },
  { ref: 'duplicate result names', q: 'SELECT deviceId, tags.deviceId FROM devices', error: 'QUERY_SYNTAX', at: 17 },
  {
    ref: 'names and examples unterminated [[',
    q: 'SELECT * FROM devices WHERE tags.[[x = 1',
    error: 'QUERY_SYNTAX',
    at: 33,
  },
  { ref: 'names and examples empty [[ ]]', q: 'SELECT * FROM devices WHERE [[]] = 1', error: 'QUERY_SYNTAX', at: 28 },
  { ref: 'language numbers', q: 'SELECT * FROM devices WHERE 1abc = 1', error: 'QUERY_SYNTAX', at: 28 },
  { ref: 'language 0xHEX needs digits', q: 'SELECT * FROM devices WHERE x = 0x', error: 'QUERY_SYNTAX', at: 32 },
  { ref: 'language TOP n', q: 'SELECT TOP 1.5 * FROM devices', error: 'QUERY_SYNTAX', at: 11 },
  { ref: 'errors no ; in messages', q: 'SELECT * FROM devices WHERE x = 1;', error: 'QUERY_SYNTAX', at: 33 },
  { ref: 'nesting limit', q: W('('.repeat(65) + 'x = 1' + ')'.repeat(65)), error: 'QUERY_SYNTAX', at: 28 + 64 },
];
