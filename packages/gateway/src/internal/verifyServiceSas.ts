/**
 * Service (shared access policy) SAS tokens, iot-hub-twin.md §5.1 and §6.2:
 * `SharedAccessSignature sr=<host>&sig=<url-encoded base64>&skn=<policy>&se=<epoch s>`, where
 * `sig = base64(HMAC-SHA256(base64decode(policyKey), <sr as transmitted> + "\n" + se))`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { GatewayError } from './iotHubError.ts';

export type PolicyRight = 'registryRead' | 'registryReadWrite' | 'serviceConnect';

/** A shared access policy: name, base64 key and rights. */
export interface SharedAccessPolicy {
  readonly name: string;
  /** The policy key, base64 (as in the connection string's `SharedAccessKey`). */
  readonly key: string;
  readonly rights: readonly PolicyRight[];
}

/** The policy a valid token was signed with. */
export interface Principal {
  readonly policy: string;
  readonly rights: ReadonlySet<PolicyRight>;
}

/** Sign a service token (for tests and tools). */
export function signServiceSas(host: string, policy: string, key: string, expirySeconds: number): string {
  const sr = encodeURIComponent(host);
  const sig = createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${expirySeconds}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&skn=${encodeURIComponent(policy)}&se=${expirySeconds}`;
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * Verify an `Authorization` header: fields by name in any order, the HMAC over `sr` as transmitted
 * (timing-safe), `se` not in the past (against `nowMs`), `sr` naming this hub (`hubName`, or a
 * resource under it).
 *
 * @throws {GatewayError} `UNAUTHORIZED` on any failure (nothing tells a forger which check failed).
 */
export function verifyServiceSas(
  header: string | undefined,
  policies: ReadonlyMap<string, SharedAccessPolicy>,
  hubName: string,
  nowMs: number,
): Principal {
  const fail = (why: string): never => {
    throw new GatewayError('UNAUTHORIZED', why);
  };
  const prefix = 'SharedAccessSignature ';
  if (header === undefined || !header.startsWith(prefix)) return fail('Missing or unsupported authorization header');
  const fields = new Map<string, string>();
  for (const part of header.slice(prefix.length).trim().split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const sigField = fields.get('sig');
  const skn = fields.get('skn');
  const se = fields.get('se');
  if (sr === undefined || sigField === undefined || skn === undefined || se === undefined) return fail('Malformed SharedAccessSignature');
  const policy = policies.get(safeDecode(skn) ?? '');
  const sig = safeDecode(sigField);
  if (policy === undefined || sig === undefined || !/^[0-9]+$/.test(se)) return fail('Unauthorized')
  const expected = createHmac('sha256', Buffer.from(policy.key, 'base64')).update(`${sr}\n${se}`).digest();
  const given = Buffer.from(sig, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return fail('Unauthorized');
  if (Number(se) * 1000 <= nowMs) return fail('The SharedAccessSignature has expired');
  const resource = (safeDecode(sr) ?? '').toLowerCase().replace(/\/+$/, '');
  const hub = hubName.toLowerCase();
  if (resource !== hub && !resource.startsWith(`${hub}/`)) return fail('The SharedAccessSignature is not valid for this hub');
  return { policy: policy.name, rights: new Set(policy.rights) };
}

/** Require one of `anyOf` (`registryReadWrite` implies `registryRead`). @throws {GatewayError} `FORBIDDEN`. */
export function requireRight(principal: Principal, anyOf: readonly PolicyRight[]): void {
  const has = (r: PolicyRight): boolean => principal.rights.has(r) || (r === 'registryRead' && principal.rights.has('registryReadWrite'));
  if (!anyOf.some(has)) {
    throw new GatewayError('FORBIDDEN', `Policy ${principal.policy} lacks the right for this operation (needs ${anyOf.join(' or ')})`);
  }
}
