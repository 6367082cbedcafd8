/**
 * The rules both SAS verifiers share (docs/iot-hub.md, "REST" and "MQTT"), so REST (service tokens,
 * `verifyServiceSas.ts`) and MQTT (device tokens, `verifyDeviceSas.ts`) accept exactly the same
 * tokens on the points they have in common: how the fields are read, when `se` is acceptable, and
 * which resources an `sr` covers.
 *
 * **Expiry (`se`).** A decimal number of seconds since the epoch whose value in ms is a safe
 * integer (anything else is malformed); the token is expired once `se * 1000 <= now`; it is refused
 * when `se` lies more than `maxTokenLifetimeMs` after now (default
 * {@link DEFAULT_MAX_TOKEN_LIFETIME_MS}, 365 days). IoT Hub itself accepts long-lived tokens, so the
 * default is generous; the bound exists so that a token minted with a typo (an `se` in ms, 13
 * digits) or for "forever" is refused instead of living until the key is rotated.
 *
 * **Scope (`sr`).** `sr` is URL-encoded once (the SDKs' `encodeURIComponent(host + '/devices/' +
 * id)`) and is decoded once. Its first segment is the host, compared case-insensitively and without
 * a port (`HostName=localhost:8884` puts the port in `sr`, docs/iot-hub.md "SDK behaviour twinlog accommodates"). The rest is a path prefix, in
 * whole segments: `<hub>` covers everything, `<hub>/devices` every device's resources,
 * `<hub>/devices/dev1` the resources of `dev1` (identity, twin, modules under it) and
 * `<hub>/devices/dev1/modules/m1` those of module `m1`. Hub-wide operations (queries, jobs,
 * configurations, the registry-wide list) need the hub-wide scope.
 *
 * twinlog is stricter than IoT Hub here, on purpose: the hub compares the whole audience as a
 * case-insensitive string prefix, so `sr=<hub>/devices/dev` would also cover `dev2` and
 * `sr=<hub>/devices/DEV1` would cover `dev1`; twinlog compares whole segments, and device and
 * module ids case-sensitively (they are case-sensitive ids, docs/iot-hub.md "The twin document"). The `devices` and `modules`
 * keywords compare case-insensitively.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

/** Default of `maxTokenLifetimeMs` on REST and MQTT: 365 days. */
export const DEFAULT_MAX_TOKEN_LIFETIME_MS = 365 * 24 * 60 * 60 * 1000;

const PREFIX = 'SharedAccessSignature ';

/** A token's signature: HMAC-SHA256 of `<sr as transmitted>\n<se>` under the key (base64 text, or its bytes). */
export function sasSignature(key: string | Buffer, sr: string, se: string | number): Buffer {
  return createHmac('sha256', typeof key === 'string' ? Buffer.from(key, 'base64') : key)
    .update(`${sr}\n${se}`)
    .digest();
}

/** Whether the signature given (decoded base64) is the one expected, compared in constant time. */
export function signatureMatches(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The fields of a `SharedAccessSignature …` text, by name and in any order, still URL-encoded as
 * transmitted; `undefined` when the text is not a SharedAccessSignature.
 *
 * @example
 * parseSasFields('SharedAccessSignature sr=hub&sig=abc%3D&se=1')?.get('sig') //=> 'abc%3D'
 */
export function parseSasFields(text: string | undefined): ReadonlyMap<string, string> | undefined {
  if (text === undefined || !text.startsWith(PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const part of text.slice(PREFIX.length).trim().split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return fields;
}

/** Why {@link checkSasExpiry} refused an `se`. */
export type SasExpiryProblem = 'malformed' | 'expired' | 'tooLong';

/** What {@link checkSasExpiry} found: the expiry in ms, or why `se` is refused. */
export type SasExpiryCheck =
  { readonly ok: true; readonly expiresAtMs: number } | { readonly ok: false; readonly problem: SasExpiryProblem };

/**
 * The one rule for a token's `se` on REST and MQTT (see the module comment). Returns a value
 * instead of throwing: each verifier maps a refusal to its own protocol's answer.
 *
 * @param se the `se` field as transmitted
 * @param nowMs physical clock, ms since the epoch
 * @param maxTokenLifetimeMs how far after now `se` may lie (default 365 days; `Infinity` turns the bound off)
 *
 * @example
 * checkSasExpiry('1700003600', 1_700_000_000_000)           //=> { ok: true, expiresAtMs: 1_700_003_600_000 }
 * checkSasExpiry('1700000000000', 1_700_000_000_000)        //=> { ok: false, problem: 'tooLong' } (an se in ms)
 * checkSasExpiry('1700000000', 1_700_000_000_000)           //=> { ok: false, problem: 'expired' }
 */
export function checkSasExpiry(
  se: string,
  nowMs: number,
  maxTokenLifetimeMs: number = DEFAULT_MAX_TOKEN_LIFETIME_MS,
): SasExpiryCheck {
  if (!/^[0-9]{1,16}$/.test(se)) return { ok: false, problem: 'malformed' };
  const expiresAtMs = Number(se) * 1000;
  if (!Number.isSafeInteger(expiresAtMs)) return { ok: false, problem: 'malformed' };
  if (expiresAtMs <= nowMs) return { ok: false, problem: 'expired' };
  if (expiresAtMs - nowMs > maxTokenLifetimeMs) return { ok: false, problem: 'tooLong' };
  return { ok: true, expiresAtMs };
}

/** A decoded `sr`: the host (lower case, no port) and the path segments below it. */
export interface SasResource {
  readonly host: string;
  readonly segments: readonly string[];
}

/** `localhost:8884` → `localhost` (case-insensitive comparison of hosts, docs/iot-hub.md "SDK behaviour twinlog accommodates"). */
export function hostKey(host: string): string {
  return host.replace(/:[0-9]+$/, '').toLowerCase();
}

/**
 * Decode an `sr` as transmitted (one `decodeURIComponent`); trailing slashes are ignored.
 * `undefined` when it is not valid URI encoding or has no host.
 *
 * @example
 * parseSasResource('myhub.azure-devices.net%2Fdevices%2Fdev1') //=> { host: 'myhub.azure-devices.net', segments: ['devices', 'dev1'] }
 */
export function parseSasResource(sr: string): SasResource | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(sr);
  } catch {
    return undefined;
  }
  const [host = '', ...segments] = decoded.replace(/\/+$/, '').split('/');
  if (host === '') return undefined;
  return { host: hostKey(host), segments };
}

/**
 * What a request addresses, for the scope check: a hub-wide operation, or a device (or a module
 * of a device) by id.
 */
export type SasTarget =
  { readonly kind: 'hub' } | { readonly kind: 'device'; readonly deviceId: string; readonly moduleId?: string };

/** The resource path of a target: `['devices', id]`, `['devices', id, 'modules', m]`; none for hub-wide operations. */
function targetSegments(target: SasTarget): readonly string[] | undefined {
  if (target.kind === 'hub') return undefined;
  return target.moduleId === undefined
    ? ['devices', target.deviceId]
    : ['devices', target.deviceId, 'modules', target.moduleId];
}

const KEYWORDS = new Set(['devices', 'modules']);

/**
 * Whether a token's resource covers a target on hub `hubName` (see the module comment): same host
 * (case-insensitive, port ignored), and the token's path a whole-segment prefix of the target's.
 *
 * @example
 * const r = parseSasResource('localhost%2Fdevices%2Fdev2')!
 * sasScopeCovers(r, 'localhost', { kind: 'device', deviceId: 'dev2' }) //=> true
 * sasScopeCovers(r, 'localhost', { kind: 'device', deviceId: 'dev1' }) //=> false
 * sasScopeCovers(r, 'localhost', { kind: 'hub' })                      //=> false (queries need sr=<hub>)
 */
export function sasScopeCovers(resource: SasResource, hubName: string, target: SasTarget): boolean {
  if (resource.host !== hostKey(hubName)) return false;
  if (resource.segments.length === 0) return true;
  const want = targetSegments(target);
  if (want === undefined || resource.segments.length > want.length) return false;
  return resource.segments.every((s, i) => {
    const w = want[i]!;
    return KEYWORDS.has(w) ? s.toLowerCase() === w : s === w;
  });
}
