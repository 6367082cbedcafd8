/**
 * Names the parser and the printer must agree on: reserved words, root fields per collection (and
 * their canonical casing), and how a path written in a query resolves to a twin path.
 */
import type { Collection } from '../query.ts';

/**
 * Words that cannot be names unless escaped as `[[word]]` (docs/iot-hub.md "Escaped names and query examples": `tags.group` fails on real hubs,
 * `tags.[[group]]` works). Compared case-insensitively.
 */
export const KEYWORDS: ReadonlySet<string> = new Set([
  'SELECT',
  'TOP',
  'AS',
  'FROM',
  'WHERE',
  'GROUP',
  'ORDER',
  'BY',
  'AND',
  'OR',
  'NOT',
  'IN',
  'NIN',
  'TRUE',
  'FALSE',
  'NULL',
  'UNDEFINED',
]);

export const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** True when `name` may be written bare (otherwise it needs `[[name]]`). */
export function isBareName(name: string): boolean {
  return IDENTIFIER.test(name) && !KEYWORDS.has(name.toUpperCase());
}

/** Root fields of a device or module twin (docs/iot-hub.md, "The twin document"), in canonical casing. */
const TWIN_ROOT = [
  'deviceId',
  'moduleId',
  'etag',
  'deviceEtag',
  'version',
  'status',
  'statusReason',
  'statusUpdateTime',
  'connectionState',
  'lastActivityTime',
  'cloudToDeviceMessageCount',
  'authenticationType',
  'x509Thumbprint',
  'capabilities',
  'deviceScope',
  'parentScopes',
  'modelId',
  'configurations',
  'tags',
  'properties',
];
/** Fields of a `devices.jobs` row (docs/iot-hub.md "Escaped names and query examples"). */
export const JOB_FIELDS = [
  'deviceId',
  'jobId',
  'jobType',
  'status',
  'startTimeUtc',
  'endTimeUtc',
  'createdDateTimeUtc',
  'lastUpdatedDateTimeUtc',
  'outcome',
];
const SECTIONS = ['desired', 'reported'];

const byLower = (names: readonly string[]): ReadonlyMap<string, string> =>
  new Map(names.map((f) => [f.toLowerCase(), f]));
const ROOTS: Readonly<Record<Collection, ReadonlyMap<string, string>>> = {
  devices: byLower(TWIN_ROOT),
  'devices.modules': byLower(TWIN_ROOT),
  'devices.jobs': byLower(JOB_FIELDS),
};
const SECTION_NAMES = byLower(SECTIONS);

/** The canonical root field `name` stands for in `collection`, if any (docs/iot-hub.md "Query conditions": root fields match case-insensitively). */
export function canonicalRoot(collection: Collection, name: string): string | undefined {
  return ROOTS[collection].get(name.toLowerCase());
}

/** The canonical section name (`desired` / `reported`) `name` stands for below `properties`, if any. */
export function canonicalSection(name: string): string | undefined {
  return SECTION_NAMES.get(name.toLowerCase());
}

/** A path segment as written: its text and whether it was `[[escaped]]` (escaped names are literal). */
export interface RawSegment {
  readonly name: string;
  readonly escaped: boolean;
}

/**
 * Resolve a path as written to the twin path it reads:
 * 1. a leading collection name is dropped (docs/iot-hub.md "Query conditions": a path may start with the collection's name,
 *    `devices.tags.x`, `devices.jobs.jobId`), when something follows it;
 * 2. a bare root field is put in canonical casing (`DeviceId` → `deviceId`, docs/iot-hub.md "Query conditions"), and so is a bare
 *    `desired` / `reported` below `properties` (twinlog: they are structure, not user names).
 * Escaped segments are never rewritten. Everything below is case-sensitive (IoT Hub's documentation leaves it open).
 */
export function resolvePath(collection: Collection, raw: readonly RawSegment[]): string[] {
  const prefix = collection.split('.');
  let segs = raw;
  if (segs.length > prefix.length && prefix.every((p, i) => !segs[i]!.escaped && segs[i]!.name.toLowerCase() === p)) {
    segs = segs.slice(prefix.length);
  }
  const out = segs.map((s) => s.name);
  const first = segs[0];
  if (first !== undefined && !first.escaped) {
    const root = canonicalRoot(collection, first.name);
    if (root !== undefined) out[0] = root;
    const second = segs[1];
    if (root === 'properties' && collection !== 'devices.jobs' && second !== undefined && !second.escaped) {
      out[1] = canonicalSection(second.name) ?? second.name;
    }
  }
  return out;
}

/**
 * How to write `path` so that {@link resolvePath} gives it back unchanged: segments that are not
 * bare names are escaped, and so is any segment that resolution would rewrite.
 */
export function writePath(collection: Collection, path: readonly string[]): string {
  const firstCollection = collection.split('.')[0]!;
  return path
    .map((seg, i) => {
      let bare = isBareName(seg);
      if (bare && i === 0) {
        if (seg.toLowerCase() === firstCollection) bare = false;
        const root = canonicalRoot(collection, seg);
        if (root !== undefined && root !== seg) bare = false;
      }
      if (bare && i === 1 && path[0] === 'properties' && collection !== 'devices.jobs') {
        const section = canonicalSection(seg);
        if (section !== undefined && section !== seg) bare = false;
      }
      return bare ? seg : writeEscaped(seg);
    })
    .join('.');
}

/** `[[name]]`; throws for a name no query text can express (empty, containing `]]`, ending in `]`). */
export function writeEscaped(name: string): string {
  if (name.length === 0 || name.includes(']]') || name.endsWith(']')) {
    throw new RangeError(`the name ${JSON.stringify(name)} cannot be written in a query`);
  }
  return `[[${name}]]`;
}
