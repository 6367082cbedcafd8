/**
 * Device authentication on MQTT CONNECT (docs/iot-hub.md, "MQTT"):
 *
 * - clientId `{deviceId}`, or `{deviceId}/{moduleId}` for a module (the `ModuleClient` of the
 *   device SDK; docs/iot-hub.md, "Module identities and module twins"): the module authenticates
 *   with its own keys, the key store's row of that twin id, and its status is checked like a device's;
 * - username `{host}/{clientId}/?api-version=…[&DeviceClientType=…][&model-id=…]`, where `host` is
 *   the hub name, optionally with a port (`HostName=localhost:8884`, docs/iot-hub.md "SDK behaviour twinlog accommodates");
 * - password `SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64}&se={epoch s}`
 *   with `resource = {host}/devices/{deviceId}` (a module's: `…/modules/{moduleId}`) and
 *   `sig = base64(HMAC-SHA256(base64decode(deviceKey), {sr as transmitted} + "\n" + se))`;
 *   the device's primary or secondary key may sign, and a policy-signed token (`skn`) is refused
 *   (device tokens only).
 *
 * The token's `se` and `sr` follow the rules shared with the REST gateway (`sasToken.ts`): `se`
 * expired or more than `maxTokenLifetimeMs` ahead is refused, and `sr` must cover the device
 * (`{host}`, `{host}/devices` or `{host}/devices/{deviceId}`, host case-insensitive, id exact).
 *
 * Each failure names the MQTT 3.1.1 CONNACK return code it answers with.
 */
import { isDisabled, type DeviceKeys } from './deviceKeyStore.ts';
import {
  checkSasExpiry,
  DEFAULT_MAX_TOKEN_LIFETIME_MS,
  hostKey,
  parseSasFields,
  parseSasResource,
  sasScopeCovers,
  sasSignature,
  signatureMatches,
} from './sasToken.ts';

export { checkSasExpiry, DEFAULT_MAX_TOKEN_LIFETIME_MS } from './sasToken.ts';

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3). */
export const CONNACK = {
  IDENTIFIER_REJECTED: 2,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

export type ConnackCode = (typeof CONNACK)[keyof typeof CONNACK];

/** A refused CONNECT: the return code and why (for diagnostics, never sent to the device). */
export class DeviceAuthError extends Error {
  readonly returnCode: ConnackCode;
  constructor(returnCode: ConnackCode, message: string) {
    super(message);
    this.name = 'DeviceAuthError';
    this.returnCode = returnCode;
  }
}

/** What a valid CONNECT tells about the device. */
export interface DeviceIdentity {
  /** The twin id: the device id, or `{deviceId}/{moduleId}` for a module (docs/iot-hub.md, "Module identities and module twins"). */
  readonly deviceId: string;
  /** `model-id` (Plug and Play) from the username, when given. */
  readonly modelId?: string;
  /** The token's expiry, ms since the epoch. */
  readonly expiresAtMs: number;
}

/**
 * Sign a device token as the SDKs do (for tests, tools and the benchmark).
 *
 * @example
 * signDeviceSas('localhost:8883', 'dev1', primaryKey, Math.floor(Date.now() / 1000) + 3600)
 */
export function signDeviceSas(host: string, deviceId: string, key: string, expirySeconds: number): string {
  const sr = encodeURIComponent(`${host}/devices/${deviceId}`);
  const sig = sasSignature(key, sr, expirySeconds).toString('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}`;
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Options of {@link verifyDeviceSas}. */
export interface VerifyDeviceSasOptions {
  /**
   * How far after now a token's `se` may lie, ms (default {@link DEFAULT_MAX_TOKEN_LIFETIME_MS},
   * 365 days; `Infinity` turns the bound off). Pass the REST gateway's value so both agree.
   */
  readonly maxTokenLifetimeMs?: number;
}

/**
 * Check a CONNECT against the device's keys.
 *
 * @throws {DeviceAuthError} `IDENTIFIER_REJECTED` for a client id with an empty device or module id
 *   or more than one `/`, or a username naming another device or module; `BAD_USERNAME_OR_PASSWORD` for a missing or malformed username or token;
 *   `NOT_AUTHORIZED` for an unknown device (no keys), a wrong signature, an expired token, a
 *   token living longer than `maxTokenLifetimeMs`, a token for another resource, or a disabled
 *   device (checked last, so only a device holding a valid token learns it is disabled).
 */
export function verifyDeviceSas(
  clientId: string,
  username: string | undefined,
  password: Buffer | undefined,
  hubName: string,
  keysOf: (deviceId: string) => DeviceKeys | undefined,
  nowMs: number,
  { maxTokenLifetimeMs = DEFAULT_MAX_TOKEN_LIFETIME_MS }: VerifyDeviceSasOptions = {},
): DeviceIdentity {
  const parts = clientId.split('/');
  if (parts.length > 2 || parts.some((p) => p === ''))
    throw new DeviceAuthError(CONNACK.IDENTIFIER_REJECTED, 'The client id must be {deviceId} or {deviceId}/{moduleId}');
  const [parentId, moduleId] = parts as [string, string | undefined];
  if (username === undefined || password === undefined)
    throw new DeviceAuthError(CONNACK.BAD_USERNAME_OR_PASSWORD, 'Username and password are required');
  const q = username.indexOf('/?');
  const path = q < 0 ? username.replace(/\/$/, '') : username.slice(0, q);
  const slash = path.indexOf('/');
  if (slash <= 0)
    throw new DeviceAuthError(
      CONNACK.BAD_USERNAME_OR_PASSWORD,
      'The username must be {host}/{deviceId}/?api-version=…',
    );
  const host = path.slice(0, slash);
  const deviceId = path.slice(slash + 1);
  if (hostKey(host) !== hostKey(hubName))
    throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'The username names another hub');
  if (deviceId !== clientId)
    throw new DeviceAuthError(CONNACK.IDENTIFIER_REJECTED, 'The username names another device than the client id');
  const params = new URLSearchParams(q < 0 ? '' : username.slice(q + 2));
  const modelId = params.get('model-id') ?? params.get('modelId') ?? undefined;

  const fields = parseSasFields(password.toString('utf8'));
  if (fields === undefined)
    throw new DeviceAuthError(CONNACK.BAD_USERNAME_OR_PASSWORD, 'The password must be a SharedAccessSignature');
  const sr = fields.get('sr');
  const sigField = fields.get('sig');
  const se = fields.get('se');
  const expiry = se === undefined ? undefined : checkSasExpiry(se, nowMs, maxTokenLifetimeMs);
  if (
    sr === undefined ||
    sigField === undefined ||
    se === undefined ||
    expiry === undefined ||
    (!expiry.ok && expiry.problem === 'malformed')
  ) {
    throw new DeviceAuthError(CONNACK.BAD_USERNAME_OR_PASSWORD, 'Malformed SharedAccessSignature');
  }
  if (fields.has('skn'))
    throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'Policy-signed device tokens are not supported');
  const keys = keysOf(deviceId);
  const sig = safeDecode(sigField);
  if (keys === undefined || sig === undefined)
    throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'Unknown device or bad signature');
  const given = Buffer.from(sig, 'base64');
  const matches = [keys.primaryKey, keys.secondaryKey].some((key) =>
    signatureMatches(given, sasSignature(key, sr, se)),
  );
  if (!matches) throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'Unknown device or bad signature');
  if (!expiry.ok) {
    throw new DeviceAuthError(
      CONNACK.NOT_AUTHORIZED,
      expiry.problem === 'expired'
        ? 'The SharedAccessSignature has expired'
        : 'The SharedAccessSignature lives longer than allowed',
    );
  }
  // docs/iot-hub.md "MQTT (devices)": the decoded sr must equal or prefix the addressed resource (the device itself).
  const resource = parseSasResource(sr);
  const target =
    moduleId === undefined
      ? { kind: 'device' as const, deviceId }
      : { kind: 'device' as const, deviceId: parentId, moduleId };
  if (resource === undefined || !sasScopeCovers(resource, hubName, target)) {
    throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'The SharedAccessSignature is not valid for this device');
  }
  // IoT Hub refuses a disabled device with CONNACK 5, "not authorized" (docs/iot-hub.md, "Device
  // status"): the SDKs treat it as final (the Node SDK's UnauthorizedError is not retried), where
  // 3, "server unavailable", would have them retry forever against a device that is shut out.
  if (isDisabled(keys)) throw new DeviceAuthError(CONNACK.NOT_AUTHORIZED, 'The device is disabled');
  return { deviceId, ...(modelId === undefined ? {} : { modelId }), expiresAtMs: expiry.expiresAtMs };
}
