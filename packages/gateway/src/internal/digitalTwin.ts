/**
 * The IoT Plug and Play digital twin view of a device twin, and the translation of a digital twin
 * update (an RFC 6902 JSON Patch) into one desired merge patch (docs/iot-hub.md, "IoT Plug and Play").
 * Pure functions: the REST routes that use them are in `digitalTwinRoutes.ts`.
 *
 * The view (`GET /digitaltwins/{id}`):
 *
 * - `$dtId` is the device id; `$metadata.$model` the model id the device announced at its MQTT
 *   connect (`""` when none).
 * - A root member of desired or reported that is an object marked `"__t": "c"` is a **component**:
 *   it is rendered as an object with its own properties and its own `$metadata` (no `__t`).
 * - Every other non-`$` member is a **property**. Its value in the view is the reported one (the
 *   acknowledgement's `value` when the device reported a Plug and Play acknowledgement); a property
 *   that is only desired has no value, only metadata.
 * - Per property, `$metadata.<name>` carries `desiredValue` and `desiredVersion` (when desired),
 *   `ackVersion`, `ackCode` and `ackDescription` (when the device acknowledged; `ad` is optional), and
 *   `lastUpdateTime` (the later of the desired and reported `$lastUpdated`). The acknowledgement and
 *   the desired version come from core's `delta`, the reconciler's own computation, so the view and
 *   `twin.deltas` never disagree.
 *
 * The update (`PATCH /digitaltwins/{id}`): the JSON Patch is checked and applied by `fast-json-patch`
 * to the desired view (desired without `$version`/`$metadata`, components keeping their `__t`
 * marker, plus an empty shell `{"__t":"c"}` for a component only the device reported, so that
 * `/comp/prop` can be added to it), and the difference between the view and the result becomes the
 * desired merge patch (removed members as `null`). Only `add`, `replace` and `remove` are accepted,
 * as on IoT Hub. An `add` or `replace` of a root member whose value carries `"$metadata": {}` adds a
 * component (the marker the Azure SDKs' "add component" helpers send); `$`-members and `__t` cannot
 * be addressed, and `null` is not a value (use `remove`).
 */
import jsonPatch from 'fast-json-patch';
import {
  delta,
  diffMergePatch,
  isPlainObject,
  jsonEquals,
  pnpAckOf,
  TwinlogError,
  type DeltaEntry,
  type DeltaInput,
  type Json,
  type JsonObject,
  type Patch,
  type PnpAck,
} from '@twinlog/core';

/** The marker of a Plug and Play component object in desired and reported. */
const COMPONENT_MARKER = '__t';

/** The operations a digital twin update accepts (IoT Hub refuses `move`, `copy` and `test`). */
export const DIGITAL_TWIN_PATCH_OPS: readonly string[] = ['add', 'replace', 'remove'];

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Whether a section member is a Plug and Play component (an object marked `"__t": "c"`). */
export function isComponent(value: unknown): value is Record<string, unknown> {
  return isPlainObject(value) && value[COMPONENT_MARKER] === 'c';
}

function objectAt(node: unknown, key: string): Record<string, unknown> {
  if (!isPlainObject(node) || !hasOwn(node, key)) return {};
  const v = node[key];
  return isPlainObject(v) ? v : {};
}

function stringAt(node: unknown, key: string): string | undefined {
  if (!isPlainObject(node) || !hasOwn(node, key)) return undefined;
  const v = node[key];
  return typeof v === 'string' ? v : undefined;
}

function numberAt(node: unknown, key: string): number | undefined {
  if (!isPlainObject(node) || !hasOwn(node, key)) return undefined;
  const v = node[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Members that are properties or components (not `$version`, `$metadata` …). */
const contentKeys = (node: Record<string, unknown>): string[] => Object.keys(node).filter((k) => !k.startsWith('$'));

/** The later of two ISO timestamps (`toISOString` form, which orders as text), either may be absent. */
function later(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a >= b ? a : b;
}

interface Scope {
  readonly desired: Record<string, unknown>;
  readonly reported: Record<string, unknown>;
  readonly desiredMeta: Record<string, unknown>;
  readonly reportedMeta: Record<string, unknown>;
  /** The section's `$version`, the desired version of a property no metadata dates. */
  readonly desiredVersion: number;
  /** `delta` entries by property name. */
  readonly entries: ReadonlyMap<string, readonly DeltaEntry[]>;
}

/** One scope (the default component, or a component): the property values and their `$metadata`. */
function renderScope(scope: Scope, skip: ReadonlySet<string>): { values: JsonObject; metadata: JsonObject } {
  const names = [...new Set([...contentKeys(scope.desired), ...contentKeys(scope.reported)])]
    .filter((k) => !skip.has(k))
    .sort();
  const values: JsonObject = {};
  const metadata: JsonObject = {};
  for (const name of names) {
    const entries = scope.entries.get(name) ?? [];
    const reportedAck = hasOwn(scope.reported, name) ? pnpAckOf(scope.reported[name]) : undefined;
    if (hasOwn(scope.reported, name)) {
      const value = reportedAck === undefined ? scope.reported[name] : reportedAck.value;
      if (value !== undefined && value !== null) values[name] = value as Json;
    }
    const meta: JsonObject = {};
    if (hasOwn(scope.desired, name)) {
      meta['desiredValue'] = scope.desired[name] as Json;
      meta['desiredVersion'] =
        entries.length > 0
          ? Math.max(...entries.map((e) => e.desiredVersion))
          : (numberAt(scope.desiredMeta[name], '$lastUpdatedVersion') ?? scope.desiredVersion);
    }
    const ack: PnpAck | undefined = entries.find((e) => e.ack !== undefined)?.ack ?? reportedAck?.ack;
    if (ack !== undefined) {
      meta['ackVersion'] = ack.av;
      meta['ackCode'] = ack.ac;
      if (ack.ad !== undefined) meta['ackDescription'] = ack.ad;
    }
    const updated = later(
      stringAt(scope.desiredMeta[name], '$lastUpdated'),
      stringAt(scope.reportedMeta[name], '$lastUpdated'),
    );
    if (updated !== undefined) meta['lastUpdateTime'] = updated;
    metadata[name] = meta;
  }
  return { values, metadata };
}

/**
 * The digital twin of a device twin, as `GET /digitaltwins/{id}` answers it (see the module comment).
 *
 * @example
 * renderDigitalTwin({ deviceId: 'dev1', properties: {
 *   desired: { targetTemperature: 21, $version: 2, $metadata: { targetTemperature: { $lastUpdated: '2026-01-01T00:00:00.000Z', $lastUpdatedVersion: 2 } } },
 *   reported: { targetTemperature: { value: 21, ac: 200, av: 2, ad: 'done' }, $version: 3, $metadata: {} },
 * } }, 'dtmi:com:example:Thermostat;1')
 * // { $dtId: 'dev1', targetTemperature: 21, $metadata: { $model: 'dtmi:com:example:Thermostat;1',
 * //   targetTemperature: { desiredValue: 21, desiredVersion: 2, ackVersion: 2, ackCode: 200, ackDescription: 'done', lastUpdateTime: '2026-01-01T00:00:00.000Z' } } }
 */
export function renderDigitalTwin(twin: DeltaInput, modelId: string): JsonObject {
  const desired = twin.properties.desired as Record<string, unknown>;
  const reported = twin.properties.reported as Record<string, unknown>;
  const desiredVersion = numberAt(desired, '$version') ?? 0;
  const components = new Set(
    [...contentKeys(desired), ...contentKeys(reported)].filter(
      (k) => isComponent(desired[k]) || isComponent(reported[k]),
    ),
  );

  // delta's entries (one per desired leaf), grouped by the property they belong to
  const rootEntries = new Map<string, DeltaEntry[]>();
  const componentEntries = new Map<string, Map<string, DeltaEntry[]>>();
  for (const entry of delta(twin).entries) {
    const [first, second] = entry.path;
    if (first === undefined) continue;
    if (components.has(first)) {
      if (second === undefined) continue;
      const byName = componentEntries.get(first) ?? new Map<string, DeltaEntry[]>();
      componentEntries.set(first, byName);
      byName.set(second, [...(byName.get(second) ?? []), entry]);
    } else {
      rootEntries.set(first, [...(rootEntries.get(first) ?? []), entry]);
    }
  }

  const desiredMeta = objectAt(desired, '$metadata');
  const reportedMeta = objectAt(reported, '$metadata');
  const root = renderScope(
    { desired, reported, desiredMeta, reportedMeta, desiredVersion, entries: rootEntries },
    components,
  );
  const out: JsonObject = { $dtId: twin.deviceId, ...root.values };
  for (const name of [...components].sort()) {
    const scope = renderScope(
      {
        desired: isComponent(desired[name]) ? desired[name] : {},
        reported: isComponent(reported[name]) ? reported[name] : {},
        desiredMeta: objectAt(desiredMeta, name),
        reportedMeta: objectAt(reportedMeta, name),
        desiredVersion,
        entries: componentEntries.get(name) ?? new Map(),
      },
      new Set([COMPONENT_MARKER]),
    );
    out[name] = { ...scope.values, $metadata: scope.metadata };
  }
  out['$metadata'] = { $model: modelId, ...root.metadata };
  return out;
}

// --- JSON Patch → desired merge patch ------------------------------------------------------------

/**
 * The desired section as a digital twin update sees it: its members without `$version` and
 * `$metadata` (components keep their marker), plus `{"__t":"c"}` for each component that only
 * `reported` has.
 *
 * @example
 * desiredView({ a: 1, $version: 3 }, { c: { __t: 'c', t: 2 } }) // { a: 1, c: { __t: 'c' } }
 */
export function desiredView(
  desired: Readonly<Record<string, unknown>>,
  reported: Readonly<Record<string, unknown>> = {},
): JsonObject {
  const view: JsonObject = {};
  for (const k of contentKeys(desired)) view[k] = desired[k] as Json;
  for (const k of contentKeys(reported)) {
    if (!hasOwn(view, k) && isComponent(reported[k])) view[k] = { [COMPONENT_MARKER]: 'c' };
  }
  return view;
}

const invalid = (message: string): TwinlogError => new TwinlogError('PATCH_NOT_OBJECT', message);

/** RFC 6901 pointer segments of `path` (`~1` → `/`, `~0` → `~`), or a clear refusal. */
function pointerSegments(path: unknown, where: string): string[] {
  if (typeof path !== 'string') throw invalid(`${where}: path must be a string`);
  if (path === '' || path === '/')
    throw invalid(`${where}: the whole digital twin cannot be written, address a property or a component`);
  if (!path.startsWith('/')) throw invalid(`${where}: path ${path} must start with /`);
  if (/~[^01]|~$/.test(path)) throw invalid(`${where}: path ${path} has an invalid ~ escape`);
  const segments = path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  for (const s of segments) {
    if (s.startsWith('$')) throw invalid(`${where}: ${s} is read-only ($dtId and $metadata are computed by the hub)`);
    if (s === COMPONENT_MARKER)
      throw invalid(
        `${where}: ${COMPONENT_MARKER} is the component marker, add a component with "$metadata": {} in its value`,
      );
    if (s === '__proto__' || s === 'constructor' || s === 'prototype')
      throw invalid(`${where}: ${s} is not a valid property name`);
  }
  return segments;
}

/** Refuse what a desired section cannot hold the way the patch means it: `null` and `$`-members. */
function checkValue(value: unknown, where: string): void {
  if (value === null) throw invalid(`${where}: null is not a property value, use a remove operation`);
  if (Array.isArray(value)) {
    for (const v of value) checkValue(v, where);
    return;
  }
  if (isPlainObject(value)) {
    for (const k of Object.keys(value)) {
      if (k.startsWith('$'))
        throw invalid(`${where}: ${k} is not a valid property name (names starting with $ are reserved)`);
      if (k === COMPONENT_MARKER)
        throw invalid(
          `${where}: ${COMPONENT_MARKER} is the component marker, add a component with "$metadata": {} in its value`,
        );
      checkValue(value[k], where);
    }
  }
}

type PatchOperation = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/** Why fast-json-patch refused an operation, in words (its own messages carry the whole tree). */
const PATCH_ERROR_TEXT: Readonly<Record<string, string>> = {
  OPERATION_PATH_UNRESOLVABLE: 'the path does not exist in desired',
  OPERATION_PATH_CANNOT_ADD: 'the parent of the path does not exist in desired (add the component or object first)',
  OPERATION_PATH_ILLEGAL_ARRAY_INDEX: 'an array index must be a number or -',
  OPERATION_VALUE_OUT_OF_BOUNDS: 'the array index is out of bounds',
  OPERATION_VALUE_REQUIRED: 'a value is required',
  OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED: 'the value is not JSON',
  OPERATION_PATH_INVALID: 'the path is not a JSON pointer',
};

/**
 * Check a digital twin update body and normalise its operations: an array of `add`, `replace` and
 * `remove` operations with valid paths and values; a root `add`/`replace` whose object value has
 * `"$metadata"` (or that replaces an existing component) becomes a component (`"__t": "c"`).
 *
 * @throws {TwinlogError} `PATCH_NOT_OBJECT` (400 `ArgumentInvalid`) naming the operation.
 */
export function parseDigitalTwinPatch(body: unknown, view: Readonly<Record<string, unknown>>): PatchOperation[] {
  if (!Array.isArray(body)) throw invalid('The body must be a JSON Patch (RFC 6902): an array of operations');
  if (body.length === 0) throw invalid('The JSON Patch has no operation');
  return body.map((raw, i): PatchOperation => {
    const where = `operation ${i}`;
    if (!isPlainObject(raw)) throw invalid(`${where} must be an object`);
    const op = raw['op'];
    if (typeof op !== 'string' || !DIGITAL_TWIN_PATCH_OPS.includes(op)) {
      throw invalid(
        `${where}: op ${typeof op === 'string' ? op : String(op)} is not supported, use add, replace or remove`,
      );
    }
    const segments = pointerSegments(raw['path'], where);
    const path = raw['path'] as string;
    if (op === 'remove') return { op, path };
    if (!hasOwn(raw, 'value')) throw invalid(`${where}: ${op} needs a value`);
    let value = raw['value'];
    if (
      segments.length === 1 &&
      isPlainObject(value) &&
      (hasOwn(value, '$metadata') || (op === 'replace' && isComponent(view[segments[0]!])))
    ) {
      const { $metadata: _marker, ...properties } = value;
      checkValue(properties, where);
      value = { [COMPONENT_MARKER]: 'c', ...properties };
    } else {
      checkValue(value, where);
    }
    return { op: op as 'add' | 'replace', path, value };
  });
}

/**
 * Apply checked operations to a view with fast-json-patch (validating each against the document
 * as the previous ones left it); the view is not changed.
 *
 * @throws {TwinlogError} `PATCH_NOT_OBJECT` naming the operation and why it cannot apply.
 */
export function applyDigitalTwinPatch(view: JsonObject, ops: readonly PatchOperation[]): JsonObject {
  // one operation at a time on a copy, so a refusal names its operation and no input is changed
  // (fast-json-patch inserts values by reference)
  let doc = structuredClone(view);
  ops.forEach((op, i) => {
    try {
      doc = jsonPatch.applyOperation(doc, structuredClone(op) as jsonPatch.Operation, true, true, true, i).newDocument;
    } catch (e) {
      if (e instanceof jsonPatch.JsonPatchError) {
        throw invalid(`operation ${i} (${op.op} ${op.path}): ${PATCH_ERROR_TEXT[e.name] ?? 'it cannot be applied'}`);
      }
      throw e;
    }
  });
  return doc;
}

/**
 * The one desired merge patch a digital twin update means: the JSON Patch `body`, checked and
 * applied to {@link desiredView}, diffed against the desired section (removed members `null`).
 * `{}` when it changes nothing. Limits (key names, sizes, depth) are checked later, as for any twin
 * write.
 *
 * @example
 * digitalTwinMergePatch({ a: 1, c: { __t: 'c', t: 20 }, $version: 4 }, {},
 *   [{ op: 'replace', path: '/c/t', value: 21 }, { op: 'remove', path: '/a' }])
 * // { a: null, c: { t: 21 } }
 * @throws {TwinlogError} `PATCH_NOT_OBJECT` (400 `ArgumentInvalid`) for an invalid patch.
 */
export function digitalTwinMergePatch(
  desired: Readonly<Record<string, unknown>>,
  reported: Readonly<Record<string, unknown>>,
  body: unknown,
): Patch {
  const view = desiredView(desired, reported);
  const after = applyDigitalTwinPatch(view, parseDigitalTwinPatch(body, view));
  const before = desiredView(desired);
  // a shell the patch did not fill is not written: desired gets no empty component
  for (const k of Object.keys(after)) {
    if (!hasOwn(before, k) && hasOwn(view, k) && jsonEquals(after[k], view[k])) delete after[k];
  }
  return diffMergePatch(before, after);
}
