/**
 * The reconciler's pure function (docs/architecture.md, "Data flow of a write"; docs/formats.md, "Deltas"): from a twin as `GET /twins/{id}`
 * returns it, compute per desired property whether the device has caught up.
 *
 * Semantics: only keys present in desired are tracked; `$`-keys are ignored; nested objects are
 * diffed per leaf; arrays are compared whole. Plug and Play acknowledgements
 * (`{ value, ac, av, ad? }`, https://learn.microsoft.com/azure/iot/concepts-convention) are honoured.
 *
 * Determinism contract: the output depends only on the document and the options (no clock reads,
 * no randomness); entries are sorted by path (keys compared by UTF-16 code units, a prefix before
 * its extensions), so the same input gives a deep-equal output and the same {@link deltaKey}.
 */
import { canonicalJson, isPlainObject, jsonEquals, type Json, type JsonObject } from './json.ts';

/**
 * The part of a twin document `delta` reads: the shape of `GET /twins/{id}` (docs/iot-hub.md, "The twin document"),
 * of which only `deviceId` and the two property sections (with `$metadata` and `$version`) matter.
 * A full `TwinDocument` (as `renderTwin` produces it) is assignable to it.
 */
export interface DeltaInput {
  readonly deviceId: string;
  readonly properties: {
    readonly desired: JsonObject;
    readonly reported: JsonObject;
  };
}

/**
 * Where one desired property stands.
 * - `pending`: the device has not reported the desired value, or its acknowledgement is for an
 *   older desired version, or carries a code that is neither 2xx nor ≥ 400;
 * - `acknowledged`: a current 2xx acknowledgement (e.g. 202, in progress) whose value is not yet
 *   the desired one;
 * - `rejected`: a current acknowledgement with code ≥ 400;
 * - `converged`: the reported value equals the desired one (with a current 2xx ack, if acked);
 * - `stale`: `pending` or `acknowledged` for at least `staleAfterMs` (only with {@link DeltaOptions} `now`).
 */
export type DeltaStatus = 'pending' | 'acknowledged' | 'rejected' | 'converged' | 'stale';

/** Every {@link DeltaStatus}, in the order `counts` lists them. */
export const DELTA_STATUSES: readonly DeltaStatus[] = Object.freeze([
  'pending',
  'acknowledged',
  'rejected',
  'converged',
  'stale',
] as const);

/** IoT Hub's "never" timestamp: the `since` of an entry when the document carries no `$lastUpdated`. */
const NEVER = '0001-01-01T00:00:00Z';

/** The status fields of a Plug and Play writable-property acknowledgement. */
export interface PnpAck {
  /** Acknowledgement code, HTTP-like: 200 done, 202 in progress, ≥ 400 refused. */
  readonly ac: number;
  /** The desired `$version` the device acknowledged. */
  readonly av: number;
  /** Optional description from the device. */
  readonly ad?: string;
}

/** One desired leaf and its status. */
export interface DeltaEntry {
  /** Keys from the desired root to the leaf. */
  readonly path: readonly string[];
  readonly status: DeltaStatus;
  /** The desired value (a scalar or a whole array). */
  readonly desired: Json;
  /** The reported value at the same path (through the ack's `value` if acked); absent if none. */
  readonly reported?: Json;
  /** The acknowledgement found at the path or its nearest acked ancestor, current or not. */
  readonly ack?: PnpAck;
  /** The leaf's `$lastUpdatedVersion`: the desired version an ack must reach. */
  readonly desiredVersion: number;
  /** ISO time from which the status holds, taken from `$metadata` only. */
  readonly since: string;
}

/** Number of entries per status. */
export type DeltaCounts = Readonly<Record<DeltaStatus, number>>;

/** The delta of one device: what `twin.deltas` carries. */
export interface DeltaState {
  readonly deviceId: string;
  /** `properties.desired.$version` (0 when absent). */
  readonly desiredVersion: number;
  /** `properties.reported.$version` (0 when absent). */
  readonly reportedVersion: number;
  /** One entry per desired leaf, sorted by path. */
  readonly entries: readonly DeltaEntry[];
  readonly counts: DeltaCounts;
  /** True when every entry is `converged` (also when there are none). */
  readonly converged: boolean;
}

/** Options of {@link delta}. */
export interface DeltaOptions {
  /**
   * Recognise Plug and Play acknowledgements in reported (default `true`). Turn off for devices
   * whose reported objects may legitimately look like `{ value, ac, av }`.
   */
  readonly acks?: boolean;
  /** The current time in ms since the epoch, supplied by the caller; enables `stale` with `staleAfterMs`. */
  readonly now?: number;
  /** How long (ms) an entry may stay `pending` or `acknowledged` before it is reported `stale`. */
  readonly staleAfterMs?: number;
}

/**
 * Compute a device's delta between desired and reported.
 *
 * For each desired leaf `p` (non-`$` keys; objects are descended, arrays and scalars are leaves),
 * with `v` its `$lastUpdatedVersion` (from desired `$metadata` at `p`, else the nearest ancestor that
 * has one, else `desired.$version`):
 * - **with an ack**: when the reported node at `p`, or the nearest (deepest) ancestor of `p`, is an
 *   ack object, the reported value is `ack.value` followed down the rest of `p`. If `av >= v`: `ac` ≥
 *   400 → `rejected`; 2xx with value equal to desired → `converged`; other 2xx → `acknowledged`;
 *   other codes → `pending`. If `av < v` (ack for an older version) → `pending`;
 * - **without an ack**: reported equal to desired (deep, key order ignored) → `converged`, else
 *   `pending`;
 * - **since**: for `pending`, the desired leaf's `$lastUpdated` (nearest in `$metadata`); otherwise the
 *   later of it and the reported node's (the ack node's, when acked) `$lastUpdated`.
 *
 * Gotchas: an ack object is recognised only with exactly `value`, numeric `ac` and `av`, and an
 * optional string `ad` (no other non-`$` keys). A Plug and Play component marker (`"__t": "c"` one
 * level below the root) is not a desired property and gets no entry. An empty desired object has
 * no leaves, hence no entry. Timestamps are compared as instants (7 fractional digits, missing `Z`
 * read as UTC); `since` is IoT Hub's "never", `0001-01-01T00:00:00Z`, when the document has no `$lastUpdated` at all. `stale`
 * appears only when both `now` and `staleAfterMs` are given. Entries share `desired` and `reported`
 * values with the input (no copies): do not mutate one through the other.
 *
 * @example
 * const state = delta({ deviceId: 'dev1', properties: {
 *   desired: { fw: '1.2', $metadata: { $lastUpdated: '2024-01-01T00:00:00Z', $lastUpdatedVersion: 4 }, $version: 4 },
 *   reported: { fw: { value: '1.2', ac: 200, av: 4 }, $metadata: { $lastUpdated: '2024-01-01T00:01:00Z' }, $version: 7 },
 * } })
 * state.entries[0]?.status // 'converged'
 * state.entries[0]?.since  // '2024-01-01T00:01:00Z'
 */
export function delta(twin: DeltaInput, options: DeltaOptions = {}): DeltaState {
  const { acks = true, now, staleAfterMs } = options;
  const desired = twin.properties.desired;
  const reported = twin.properties.reported;
  const desiredMeta = own(desired, '$metadata');
  const reportedMeta = own(reported, '$metadata');
  const desiredVersion = finiteOr(own(desired, '$version'), 0);
  const reportedVersion = finiteOr(own(reported, '$version'), 0);

  const leaves: Leaf[] = [];
  collectLeaves(desired, [], leaves);
  leaves.sort((a, b) => comparePaths(a.path, b.path));

  const counts: Record<DeltaStatus, number> = { pending: 0, acknowledged: 0, rejected: 0, converged: 0, stale: 0 };
  const entries: DeltaEntry[] = [];
  for (const { path, value } of leaves) {
    const v = finiteOr(nearestMeta(desiredMeta, path, '$lastUpdatedVersion', isFiniteNumber), desiredVersion);
    const desiredSince = nearestMeta(desiredMeta, path, '$lastUpdated', isString);

    // Walk the raw reported tree down `path`, remembering the deepest ack object met.
    let node: unknown = reported;
    let ackDepth = -1;
    let ack: AckNode | undefined;
    for (let i = 0; i < path.length; i++) {
      node = own(node, path[i]!);
      if (node === undefined) break;
      const found = acks ? asAck(node) : undefined;
      if (found !== undefined) {
        ack = found;
        ackDepth = i;
      }
    }
    let reportedValue: unknown;
    if (ack === undefined) reportedValue = node;
    else {
      reportedValue = ack.value;
      for (let i = ackDepth + 1; i < path.length && reportedValue !== undefined; i++) {
        reportedValue = own(reportedValue, path[i]!);
      }
    }
    const equal = reportedValue !== undefined && jsonEquals(reportedValue, value);

    let status: DeltaStatus;
    if (ack === undefined) status = equal ? 'converged' : 'pending';
    else if (ack.status.av < v) status = 'pending';
    else if (ack.status.ac >= 400) status = 'rejected';
    else if (ack.status.ac >= 200 && ack.status.ac < 300) status = equal ? 'converged' : 'acknowledged';
    else status = 'pending';

    let since = desiredSince ?? NEVER;
    if (status !== 'pending') {
      const reportedPath = ack === undefined ? path : path.slice(0, ackDepth + 1);
      const reportedSince = nearestMeta(reportedMeta, reportedPath, '$lastUpdated', isString);
      if (
        reportedSince !== undefined &&
        (desiredSince === undefined || compareTimes(reportedSince, desiredSince) > 0)
      ) {
        since = reportedSince;
      }
    }
    if ((status === 'pending' || status === 'acknowledged') && now !== undefined && staleAfterMs !== undefined) {
      const at = parseTime(since);
      if (at !== undefined && now - at.ms >= staleAfterMs) status = 'stale';
    }

    counts[status]++;
    const entry: { -readonly [K in keyof DeltaEntry]: DeltaEntry[K] } = {
      path,
      status,
      desired: value,
      desiredVersion: v,
      since,
    };
    if (reportedValue !== undefined) entry.reported = reportedValue as Json;
    if (ack !== undefined) entry.ack = ack.status;
    entries.push(entry);
  }

  return {
    deviceId: twin.deviceId,
    desiredVersion,
    reportedVersion,
    entries,
    counts,
    converged: entries.length === counts.converged,
  };
}

/**
 * A canonical string for a {@link DeltaState} (canonical JSON of the whole state, nothing
 * ignored): equal states give equal keys. The reconciler stores the last key per device and emits
 * on `twin.deltas` only when it changes.
 *
 * Gotcha: `since` and the versions are part of the key, so a device that re-reports the same value
 * (new `$lastUpdated`) changes the key; compare only `entries`' statuses if that is unwanted.
 *
 * @example
 * if (deltaKey(next) !== lastKey.get(id)) emit(next)
 */
export function deltaKey(state: DeltaState): string {
  return canonicalJson(state);
}

/**
 * True when two delta states are identical (same {@link deltaKey}).
 *
 * @example
 * deltaEquals(delta(twin), delta(twin)) // true: delta is deterministic
 */
export function deltaEquals(a: DeltaState, b: DeltaState): boolean {
  return a === b || deltaKey(a) === deltaKey(b);
}

/**
 * The Plug and Play acknowledgement a reported node is, if it is one: exactly the shape {@link delta}
 * recognises (`value`, numeric `ac` and `av`, optional string `ad`, no other non-`$` keys). The
 * gateway's digital twin view reads reported-only writable properties with it
 * (docs/iot-hub.md, "IoT Plug and Play").
 *
 * @example
 * pnpAckOf({ value: 21, ac: 200, av: 3 }) // { value: 21, ack: { ac: 200, av: 3 } }
 * pnpAckOf(21)                            // undefined
 */
export function pnpAckOf(node: unknown): { readonly value: unknown; readonly ack: PnpAck } | undefined {
  const found = asAck(node);
  return found === undefined ? undefined : { value: found.value, ack: found.status };
}

// ---------------------------------------------------------------------------------------------------

interface Leaf {
  readonly path: readonly string[];
  readonly value: Json;
}

interface AckNode {
  readonly value: unknown;
  readonly status: PnpAck;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** `o[k]` when `o` is a plain object owning `k` (so `__proto__`, `constructor` … never leak in). */
function own(o: unknown, k: string): unknown {
  return isPlainObject(o) && hasOwn(o, k) ? o[k] : undefined;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const finiteOr = (v: unknown, fallback: number): number => (isFiniteNumber(v) ? v : fallback);

function collectLeaves(node: Readonly<Record<string, unknown>>, path: readonly string[], out: Leaf[]): void {
  for (const k of Object.keys(node)) {
    if (k.startsWith('$')) continue;
    const v = node[k];
    if (v === undefined || v === null) continue;
    if (path.length === 1 && k === '__t' && v === 'c') continue; // PnP component marker
    const p = [...path, k];
    if (isPlainObject(v)) collectLeaves(v, p, out);
    else out.push({ path: p, value: v as Json });
  }
}

function comparePaths(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** The `field` of the deepest `$metadata` node along `path` (root included) that has a valid one. */
function nearestMeta<T>(
  meta: unknown,
  path: readonly string[],
  field: string,
  valid: (v: unknown) => v is T,
): T | undefined {
  let node = meta;
  let best: T | undefined;
  for (let i = 0; ; i++) {
    const f = own(node, field);
    if (valid(f)) best = f;
    if (i >= path.length) return best;
    node = own(node, path[i]!);
    if (node === undefined) return best;
  }
}

/** The ack fields when `node` is exactly a Plug and Play ack object. */
function asAck(node: unknown): AckNode | undefined {
  if (!isPlainObject(node) || !hasOwn(node, 'value')) return undefined;
  const ac = node['ac'];
  const av = node['av'];
  const ad = node['ad'];
  if (!isFiniteNumber(ac) || !isFiniteNumber(av)) return undefined;
  if (ad !== undefined && typeof ad !== 'string') return undefined;
  for (const k of Object.keys(node)) {
    if (k !== 'value' && k !== 'ac' && k !== 'av' && k !== 'ad' && !k.startsWith('$')) return undefined;
  }
  return { value: node['value'], status: ad === undefined ? { ac, av } : { ac, av, ad } };
}

// --- timestamps ------------------------------------------------------------------------------------

const ISO_TIME = /^(-?\d{4,6})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$/;

interface Instant {
  /** Whole seconds since the epoch. */
  readonly seconds: number;
  /** Fraction of the second, as 9 digits (nanoseconds). */
  readonly fraction: string;
  /** Milliseconds since the epoch (fraction truncated). */
  readonly ms: number;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Parse an ISO 8601 date-time (any number of fractional digits; no zone means UTC), without `Date`. */
function parseTime(s: string): Instant | undefined {
  const m = ISO_TIME.exec(s);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, se, frac = '', zone = 'Z'] = m;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const digits = zone.replace(':', '');
    const sign = digits.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  const seconds =
    daysFromCivil(Number(y), Number(mo), Number(d)) * 86400 +
    Number(h) * 3600 +
    Number(mi) * 60 +
    Number(se) -
    offsetMinutes * 60;
  const fraction = (frac + '000000000').slice(0, 9);
  return { seconds, fraction, ms: seconds * 1000 + Number(fraction.slice(0, 3)) };
}

/** Order two timestamps as instants; unparsable ones sort before parsable ones, then by text. */
function compareTimes(a: string, b: string): number {
  const x = parseTime(a);
  const y = parseTime(b);
  if (x !== undefined && y !== undefined) {
    if (x.seconds !== y.seconds) return x.seconds < y.seconds ? -1 : 1;
    if (x.fraction !== y.fraction) return x.fraction < y.fraction ? -1 : 1;
    return 0;
  }
  if (x !== undefined) return 1;
  if (y !== undefined) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}
