/**
 * The error codes @twinlog/fleet raises. They live in core's `ERROR_CODES` (with IoT Hub's
 * equivalent where one exists: `READ_MODEL_TIMEOUT` is 504, `JOB_NOT_FOUND` 404002,
 * `CONFIGURATION_PRECONDITION_FAILED` 412001, the `*_INVALID` codes 400004); this module lists the
 * fleet's subset and builds them. Match with {@link isFleetError} or `isTwinlogError(e, code)`.
 */
import { isTwinlogError, TwinlogError, type TwinlogErrorCode, type TwinlogErrorOptions } from '@twinlog/core';

export const FLEET_ERROR_CODES = [
  'READ_MODEL_TIMEOUT',
  'FRESHNESS_TOKEN_INVALID',
  'READ_MODEL_FAILED',
  'JOB_NOT_FOUND',
  'JOB_ALREADY_EXISTS',
  'JOB_INVALID',
  'CONFIGURATION_NOT_FOUND',
  'CONFIGURATION_INVALID',
  'CONFIGURATION_PRECONDITION_FAILED',
  'QUOTA_EXCEEDED',
] as const satisfies readonly TwinlogErrorCode[];

export type FleetErrorCode = (typeof FLEET_ERROR_CODES)[number];

/** A `TwinlogError` with one of the fleet codes. */
export function fleetError(code: FleetErrorCode, message: string, options: TwinlogErrorOptions = {}): TwinlogError {
  return new TwinlogError(code, message, options);
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
