/**
 * Stateless checks of a whole event (docs/fold.md, "Validation"), run before the log by writers and again
 * by the fold on every record it reads. Depends on the record alone (and its append time), so a
 * rejection is deterministic and replays decide the same way.
 */
import { TwinlogError, type Result } from './errors.ts';
import { isSection, type TwinEvent } from './event.ts';
import { HORIZON_DEFAULTS } from './horizon.ts';
import { isValidHlc } from './stamp.ts';
import { TWIN_LIMITS, validatePatch, type TwinLimits } from './validatePatch.ts';

/** IoT Hub device ids: ≤ 128 ASCII alphanumerics and `- : . + % _ # * ? ! ( ) , = @ ; $ '`. */
const DEVICE_ID = /^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/;
/** Writer ids are printable ASCII so every encoding sorts them the same way (docs/fold.md, "The total order"). */
const WRITER_ID = /^[\x21-\x7e]{1,128}$/;

/** An idempotency key: printable ASCII without spaces, 1 to 128 characters (the writer id's rule). */
export function isIdempotencyKey(key: unknown): key is string {
  return typeof key === 'string' && WRITER_ID.test(key);
}

export function isValidDeviceId(id: unknown): id is string {
  return typeof id === 'string' && DEVICE_ID.test(id);
}

/**
 * A twin's id, the key of its log records (docs/iot-hub.md, "Module identities and module twins"):
 * a device id, or `{deviceId}/{moduleId}` for a module twin (module ids follow the device id rule).
 * `/` is not a device id character, so a module twin's id never names a device.
 */
export function isValidTwinId(id: unknown): id is string {
  if (typeof id !== 'string') return false;
  const slash = id.indexOf('/');
  return slash < 0 ? DEVICE_ID.test(id) : DEVICE_ID.test(id.slice(0, slash)) && DEVICE_ID.test(id.slice(slash + 1));
}

/**
 * The twin id of module `moduleId` of device `deviceId` (docs/iot-hub.md, "Module identities and module twins").
 *
 * @example
 * moduleTwinId('gw-1', 'sensor') //=> 'gw-1/sensor'
 */
export function moduleTwinId(deviceId: string, moduleId: string): string {
  return `${deviceId}/${moduleId}`;
}

/**
 * The device id and, for a module twin, the module id of a twin id.
 *
 * @example
 * parseTwinId('gw-1/sensor') //=> { deviceId: 'gw-1', moduleId: 'sensor' }
 * parseTwinId('gw-1') //=> { deviceId: 'gw-1' }
 */
export function parseTwinId(id: string): { deviceId: string; moduleId?: string } {
  const slash = id.indexOf('/');
  return slash < 0 ? { deviceId: id } : { deviceId: id.slice(0, slash), moduleId: id.slice(slash + 1) };
}

export interface ValidateEventOptions {
  /** Patch limits (default IoT Hub's). */
  readonly limits?: Partial<TwinLimits>;
  /**
   * The record's append time (broker LogAppendTime or the embedded log's row time). When given,
   * stamps more than `maxForwardSkewMs` ahead of it, or older than
   * `maxOfflineWindowMs + maxSkewMs` behind it, are rejected with `STAMP_SKEW` (docs/fold.md "Skew").
   */
  readonly appendTime?: number;
  /** Default 5 minutes. */
  readonly maxForwardSkewMs?: number;
  /**
   * How long a producer that stamps its own records may buffer them offline; default one day, the
   * same window the projector's GC horizon uses (`HORIZON_DEFAULTS`, docs/bounded-state.md).
   */
  readonly maxOfflineWindowMs?: number;
  /** Default 1 minute. */
  readonly maxSkewMs?: number;
}

const fail = (
  code: 'EVENT_INVALID' | 'DEVICE_ID_INVALID' | 'STAMP_INVALID' | 'STAMP_SKEW',
  message: string,
  details = {},
) => ({ ok: false, error: new TwinlogError(code, message, { details }) }) as const;

/**
 * Check an event without throwing: twin id (a device's, or a module's `{deviceId}/{moduleId}`), dot, stamp, kind and op, lifecycle shape, the patch
 * (IoT Hub rules, {@link validatePatch}) and, given an append time, clock skew.
 *
 * @example
 * const r = validateEvent(event, { appendTime: record.timestamp })
 * if (!r.ok) reject(event, r.error.code)
 */
export function validateEvent(
  e: TwinEvent,
  {
    limits = TWIN_LIMITS,
    appendTime,
    maxForwardSkewMs = 5 * 60_000,
    maxOfflineWindowMs = HORIZON_DEFAULTS.maxOfflineWindowMs,
    maxSkewMs = HORIZON_DEFAULTS.maxSkewMs,
  }: ValidateEventOptions = {},
): Result<TwinEvent> {
  if (!isValidTwinId(e.deviceId)) return fail('DEVICE_ID_INVALID', `invalid device id`, { deviceId: e.deviceId });
  if (!WRITER_ID.test(e.id.writer) || !Number.isSafeInteger(e.id.seq) || e.id.seq < 0) {
    return fail('EVENT_INVALID', 'invalid event id', { writer: e.id.writer, seq: e.id.seq });
  }
  if (!isValidHlc(e.stamp)) return fail('STAMP_INVALID', 'invalid stamp', { ...e.stamp });
  if (e.op !== 'merge' && e.op !== 'replace') return fail('EVENT_INVALID', `invalid op`, { op: e.op });
  if (typeof e.actor !== 'string') return fail('EVENT_INVALID', 'invalid actor');
  if (e.cond !== undefined) {
    const { ifMatch, ifVersion, key } = e.cond;
    if (
      (ifMatch !== undefined && typeof ifMatch !== 'string') ||
      (ifVersion !== undefined && !Number.isSafeInteger(ifVersion))
    ) {
      return fail('EVENT_INVALID', 'invalid precondition');
    }
    if (key !== undefined && !isIdempotencyKey(key)) {
      return fail('EVENT_INVALID', 'invalid idempotency key: printable ASCII, 1 to 128 characters');
    }
  }
  if (appendTime !== undefined) {
    if (e.stamp.wall > appendTime + maxForwardSkewMs) {
      return fail('STAMP_SKEW', `stamp is more than ${maxForwardSkewMs} ms ahead of its append time`, {
        wall: e.stamp.wall,
        appendTime,
      });
    }
    if (e.stamp.wall < appendTime - maxOfflineWindowMs - maxSkewMs) {
      return fail('STAMP_SKEW', 'stamp is older than the offline window', { wall: e.stamp.wall, appendTime });
    }
  }
  if (e.section === 'create' || e.section === 'delete') {
    if (e.op !== 'merge' || Object.keys(e.patch).length > 0)
      return fail('EVENT_INVALID', `${e.section} carries no patch`);
    return { ok: true, value: e };
  }
  if (!isSection(e.section)) return fail('EVENT_INVALID', 'invalid section', { section: e.section });
  const patch = validatePatch(e.section, e.patch, limits);
  return patch.ok ? { ok: true, value: e } : patch;
}
