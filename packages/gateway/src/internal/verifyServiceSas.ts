/**
 * Service (shared access policy) SAS tokens (docs/iot-hub.md, "REST"):
 * `SharedAccessSignature sr=<host>[/devices/<id>]&sig=<url-encoded base64>&skn=<policy>&se=<epoch s>`,
 * where `sig = base64(HMAC-SHA256(base64decode(policyKey), <sr as transmitted> + "\n" + se))`.
 * The `se` and `sr` rules are shared with the MQTT gateway's device tokens (`sasToken.ts`).
 */
import { GatewayError } from './iotHubError.ts';
import {
  checkSasExpiry,
  DEFAULT_MAX_TOKEN_LIFETIME_MS,
  hostKey,
  parseSasFields,
  parseSasResource,
  sasScopeCovers,
  sasSignature,
  signatureMatches,
  type SasResource,
  type SasTarget,
} from './sasToken.ts';

export type PolicyRight = 'registryRead' | 'registryReadWrite' | 'serviceConnect';

/** A shared access policy: name, base64 key and rights. */
export interface SharedAccessPolicy {
  readonly name: string;
  /** The policy key, base64 (as in the connection string's `SharedAccessKey`). */
  readonly key: string;
  readonly rights: readonly PolicyRight[];
}

/** The policy a valid token was signed with, and what its `sr` covers. */
export interface Principal {
  readonly policy: string;
  readonly rights: ReadonlySet<PolicyRight>;
  /** The token's decoded `sr` (see {@link assertScope}). */
  readonly resource: SasResource;
  /** The token's expiry, ms since the epoch. */
  readonly expiresAtMs: number;
}

/**
 * Sign a service token (for tests and tools). `resource` is the hub's host name for a hub-wide
 * token, or `<host>/devices/{id}` for a token limited to one device.
 *
 * @example
 * signServiceSas('myhub.azure-devices.net', 'iothubowner', key, Math.floor(Date.now() / 1000) + 3600)
 * signServiceSas('myhub.azure-devices.net/devices/dev1', 'iothubowner', key, Math.floor(Date.now() / 1000) + 3600)
 */
export function signServiceSas(resource: string, policy: string, key: string, expirySeconds: number): string {
  const sr = encodeURIComponent(resource);
  const sig = sasSignature(key, sr, expirySeconds).toString('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&skn=${encodeURIComponent(policy)}&se=${expirySeconds}`;
}

const NO_KEY = Buffer.alloc(32);

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Options of {@link verifyServiceSas}. */
export interface VerifyServiceSasOptions {
  /** How far after now `se` may lie, ms (default {@link DEFAULT_MAX_TOKEN_LIFETIME_MS}, 365 days). */
  readonly maxTokenLifetimeMs?: number;
}

/**
 * Verify an `Authorization` header: fields by name in any order, the HMAC over `sr` as transmitted
 * (timing-safe), `se` by the rule shared with MQTT (`checkSasExpiry`: not past, not more than
 * `maxTokenLifetimeMs` ahead), `sr` on this hub (host case-insensitive). What the token may touch
 * below the hub is checked per request by {@link assertScope}.
 *
 * @throws {GatewayError} `UNAUTHORIZED` on any failure. The error's message says which check failed,
 *   for the debug log only: the HTTP answer is one generic text for every 401 (`iotHubError.ts`),
 *   and no message carries a key or a signature.
 */
export function verifyServiceSas(
  header: string | undefined,
  policies: ReadonlyMap<string, SharedAccessPolicy>,
  hubName: string,
  nowMs: number,
  { maxTokenLifetimeMs = DEFAULT_MAX_TOKEN_LIFETIME_MS }: VerifyServiceSasOptions = {},
): Principal {
  const fail = (why: string): never => {
    throw new GatewayError('UNAUTHORIZED', why);
  };
  if (header === undefined || header === '') return fail('missing authorization header');
  const fields = parseSasFields(header);
  if (fields === undefined) return fail('authorization header is not a SharedAccessSignature');
  const sr = fields.get('sr');
  const sigField = fields.get('sig');
  const skn = fields.get('skn');
  const se = fields.get('se');
  if (sr === undefined || sigField === undefined || skn === undefined || se === undefined)
    return fail('malformed SharedAccessSignature (sr, sig, skn and se are required)');
  const sig = safeDecode(sigField);
  const expiry = checkSasExpiry(se, nowMs, maxTokenLifetimeMs);
  if (sig === undefined || (!expiry.ok && expiry.problem === 'malformed'))
    return fail('malformed SharedAccessSignature (sig or se)');
  const policy = policies.get(safeDecode(skn) ?? '');
  // an unknown policy costs the same HMAC as a known one (no timing hint about policy names)
  const expected = sasSignature(policy?.key ?? NO_KEY, sr, se);
  const given = Buffer.from(sig, 'base64');
  if (policy === undefined) return fail('unknown policy');
  if (!signatureMatches(given, expected)) return fail(`signature mismatch for policy ${policy.name}`);
  if (!expiry.ok)
    return fail(
      expiry.problem === 'expired' ? 'expired token' : `token lifetime over the maximum of ${maxTokenLifetimeMs} ms`,
    );
  const resource = parseSasResource(sr);
  if (resource === undefined || resource.host !== hostKey(hubName)) return fail('token for another hub');
  return { policy: policy.name, rights: new Set(policy.rights), resource, expiresAtMs: expiry.expiresAtMs };
}

/**
 * Require the token's `sr` to cover what the request addresses (`sasToken.ts`: `<hub>` covers
 * everything, `<hub>/devices/{id}` only that device's identity, twin and modules; queries, jobs,
 * configurations and registry-wide calls need `<hub>`).
 *
 * @throws {GatewayError} `UNAUTHORIZED` (the same answer as any other failed authentication).
 */
export function assertScope(principal: Principal, hubName: string, target: SasTarget): void {
  if (sasScopeCovers(principal.resource, hubName, target)) return;
  const what =
    target.kind === 'hub'
      ? 'a hub-wide operation'
      : `device ${target.deviceId}${target.moduleId === undefined ? '' : ` module ${target.moduleId}`}`;
  throw new GatewayError(
    'UNAUTHORIZED',
    `token scope ${['', ...principal.resource.segments].join('/') || '/'} does not cover ${what}`,
  );
}

/** The device a device-scoped token is limited to (`<hub>/devices/{id}[/…]`), else `undefined`. */
export function scopedDeviceOf(principal: Principal): string | undefined {
  const [devices, id] = principal.resource.segments;
  return devices !== undefined && devices.toLowerCase() === 'devices' && id !== undefined ? id : undefined;
}

/** Require one of `anyOf` (`registryReadWrite` implies `registryRead`). @throws {GatewayError} `FORBIDDEN`. */
export function requireRight(principal: Principal, anyOf: readonly PolicyRight[]): void {
  const has = (r: PolicyRight): boolean =>
    principal.rights.has(r) || (r === 'registryRead' && principal.rights.has('registryReadWrite'));
  if (!anyOf.some(has)) {
    throw new GatewayError(
      'FORBIDDEN',
      `Policy ${principal.policy} lacks the right for this operation (needs ${anyOf.join(' or ')})`,
    );
  }
}
