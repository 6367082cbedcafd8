/**
 * The error codes of @twinlog/fleet. They are `TwinlogError`s (match them with
 * {@link isFleetError} or `isTwinlogError(e)` and `e.code`), raised with codes that core's
 * `ERROR_CODES` table does not list yet, so `e.iotHub` is `undefined` for them.
 *
 * TODO(lead): move these codes into core's `ERROR_CODES` (this package may not edit core); the
 * gateway can then map them (a timeout would be 504, unknown job 404, an existing job 409).
 */
import { isTwinlogError, TwinlogError, type TwinlogErrorCode, type TwinlogErrorOptions } from '@twinlog/core';

export const FLEET_ERROR_CODES = [
  /** The read model did not reflect the requested position within the wait (retryable). */
  'READ_MODEL_TIMEOUT',
  /** A freshness token that this read model did not write. */
  'FRESHNESS_TOKEN_INVALID',
  /** The read model failed (its consumer stopped); queries still answer from the last state. */
  'READ_MODEL_FAILED',
  /** No job with that id. */
  'JOB_NOT_FOUND',
  /** A job with that id exists already. */
  'JOB_ALREADY_EXISTS',
  /** A job request that is not valid (id, type, query condition, patch). */
  'JOB_INVALID',
  /** No configuration with that id. */
  'CONFIGURATION_NOT_FOUND',
  /** A configuration that is not valid (id, priority, target condition, content, metrics). */
  'CONFIGURATION_INVALID',
  /** A configuration update whose etag does not match. */
  'CONFIGURATION_PRECONDITION_FAILED',
] as const;

export type FleetErrorCode = (typeof FLEET_ERROR_CODES)[number];

/** A `TwinlogError` with one of the fleet codes. */
export function fleetError(code: FleetErrorCode, message: string, options: TwinlogErrorOptions = {}): TwinlogError {
  return new TwinlogError(code as unknown as TwinlogErrorCode, message, options);
}

/**
 * True when `e` is a twinlog error with a fleet code (optionally this one).
 *
 * @example
 * try { await readModel.waitFor(receipt, { timeoutMs: 1000 }) } catch (e) {
 *   if (isFleetError(e, 'READ_MODEL_TIMEOUT')) retryLater()
 * }
 */
export function isFleetError(e: unknown, code?: FleetErrorCode): e is TwinlogError {
  if (!isTwinlogError(e)) return false;
  const c = e.code as string;
  return code === undefined ? (FLEET_ERROR_CODES as readonly string[]).includes(c) : c === code;
}
