/**
 * The gateway's one error-mapping point (CONTRIBUTING.md, "Errors"): every failure of a request ends here and
 * is written as IoT Hub's HTTP error body (docs/iot-hub.md, "Errors"), with the status and code from
 * core's `ERROR_CODES` table for `TwinlogError`s and from {@link GATEWAY_CODES} for the failures
 * only the HTTP edge knows (authentication, routing, protocol).
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isTwinlogError, type IotHubCode } from '@twinlog/core';

/** IoT Hub codes of failures that exist only at the HTTP edge (no `TwinlogError` code). */
export const GATEWAY_CODES = {
  /**
   * Any failed authentication: missing, malformed, forged or expired SAS token, a lifetime over the
   * maximum, unknown policy, a token for another hub or whose `sr` does not cover the request
   * (docs/iot-hub.md "Errors": 401002). Always answered with the one text of {@link UNAUTHORIZED_TEXT}.
   */
  UNAUTHORIZED: { status: 401, code: 401002, name: 'IotHubUnauthorizedAccess' },
  /**
   * A valid token whose policy lacks the route's right. docs/iot-hub.md "Errors" lists 403 without a name for this;
   * twinlog keeps the 401 name with status 403 (the Node SDK maps any 403 to one error class).
   */
  FORBIDDEN: { status: 403, code: 403001, name: 'IotHubUnauthorizedAccess' },
  /** Missing or unknown `api-version` (docs/iot-hub.md "Errors": 400001). */
  API_VERSION: { status: 400, code: 400001, name: 'InvalidProtocolVersion' },
  /** Unparsable JSON body, or a body twinlog does not accept (docs/iot-hub.md "Errors": 400004). */
  ARGUMENT_INVALID: { status: 400, code: 400004, name: 'ArgumentInvalid' },
  /** A body that is not `application/json` in UTF-8, or not valid UTF-8 (docs/iot-hub.md "Errors": 400103). */
  CONTENT_INVALID: { status: 400, code: 400103, name: 'InvalidContentEncodingOrType' },
  /** Over the policy's (or the device-scoped token's) request rate (docs/iot-hub.md "Errors": 429001, docs/iot-hub.md "Throttling"). */
  THROTTLED: { status: 429, code: 429001, name: 'ThrottlingException' },
  /** Request body above the gateway's limit (docs/iot-hub.md "Errors": 413001). */
  TOO_LARGE: { status: 413, code: 413001, name: 'MessageTooLarge' },
  /** No such route, or a route whose service the gateway was not given (jobs, configurations). */
  NOT_FOUND: { status: 404, code: 404000, name: 'NotFound' },
  /** A module that does not exist (its twin `{deviceId}/{moduleId}` does not; docs/iot-hub.md, "Module identities and module twins"). */
  MODULE_NOT_FOUND: { status: 404, code: 404010, name: 'ModuleNotFound' },
  /** A module created twice. */
  MODULE_ALREADY_EXISTS: { status: 409, code: 409301, name: 'ModuleAlreadyExistsOnDevice' },
  METHOD_NOT_ALLOWED: { status: 405, code: 405000, name: 'MethodNotAllowed' },
  SERVER_ERROR: { status: 500, code: 500001, name: 'ServerError' },
} as const satisfies Record<string, IotHubCode>;

export type GatewayCode = keyof typeof GATEWAY_CODES;

/**
 * The text of every 401, whatever check failed (a forger learns nothing from it); the reason goes
 * only to the request diagnostics channel (`GatewayRequestEvent.detail`), for a debug log.
 */
export const UNAUTHORIZED_TEXT = 'Unauthorized';

/** A failure of the HTTP edge itself (not of the library calls it wraps). */
export class GatewayError extends Error {
  readonly code: GatewayCode;
  constructor(code: GatewayCode, message: string) {
    super(message);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** The IoT Hub code of any thrown value: gateway codes, core's table, else 500 ServerError. */
export function iotHubCodeOf(e: unknown): IotHubCode {
  if (e instanceof GatewayError) return GATEWAY_CODES[e.code];
  if (isTwinlogError(e)) return e.iotHub ?? GATEWAY_CODES.SERVER_ERROR;
  return GATEWAY_CODES.SERVER_ERROR;
}

/** `MM/DD/YYYY HH:MM:SS` (UTC), as in a real hub's tracking id. */
function hubTimestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/**
 * The IoT Hub error body for a failure (docs/iot-hub.md "Errors"). The text carries no `;` (the Node SDK keeps only the
 * second `;`-segment of `Message`, docs/iot-hub.md "SDK behaviour twinlog accommodates"); internal errors never leak their message, and every
 * authentication failure has the same text ({@link UNAUTHORIZED_TEXT}).
 */
export function iotHubErrorBody(
  e: unknown,
  nowMs: number,
): { status: number; body: { Message: string; ExceptionMessage: string } } {
  const hub = iotHubCodeOf(e);
  const known = e instanceof GatewayError || (isTwinlogError(e) && e.iotHub !== undefined);
  const unauthorized = e instanceof GatewayError && e.code === 'UNAUTHORIZED';
  const text = (
    unauthorized ? UNAUTHORIZED_TEXT : known && e instanceof Error ? e.message : 'An internal error occurred'
  ).replace(/[;\r\n]/g, ',');
  const tracking = randomBytes(16).toString('hex').toUpperCase();
  return {
    status: hub.status,
    body: {
      Message: `ErrorCode:${hub.name};${text}`,
      ExceptionMessage: `Tracking ID:${tracking}-G:0-TimeStamp:${hubTimestamp(nowMs)}`,
    },
  };
}

/** Write a JSON response with the content type the SDKs need to parse it (docs/iot-hub.md "REST (back ends)"). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/**
 * The error middleware: map and write any failure (once; a started response is just ended).
 * `headers` go on the error response (e.g. `connection: close` when the request body was not read).
 */
export function sendError(res: ServerResponse, e: unknown, nowMs: number, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const { status, body } = iotHubErrorBody(e, nowMs);
  sendJson(res, status, body, headers);
}
