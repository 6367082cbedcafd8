import { describe, expect, it } from 'vitest';
import { GatewayError, iotHubErrorBody } from './iotHubError.ts';
import {
  assertScope,
  scopedDeviceOf,
  signServiceSas,
  verifyServiceSas,
  type Principal,
  type SharedAccessPolicy,
} from './verifyServiceSas.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const POLICIES = new Map<string, SharedAccessPolicy>([
  ['iothubowner', { name: 'iothubowner', key: KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
]);
const NOW = 1_700_000_000_000;
const SE = NOW / 1000 + 3600;

/** The debug reason of a refusal, or undefined when the token is accepted. */
function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    expect((e as GatewayError).code).toBe('UNAUTHORIZED');
    return (e as GatewayError).message;
  }
}

describe('verifyServiceSas', () => {
  it('accepts a hub-wide token as the SDK signs it, and a device-scoped one, with what they cover', () => {
    const hubWide = verifyServiceSas(signServiceSas('localhost', 'iothubowner', KEY, SE), POLICIES, 'LocalHost', NOW);
    expect(hubWide).toMatchObject({
      policy: 'iothubowner',
      resource: { host: 'localhost', segments: [] },
      expiresAtMs: SE * 1000,
    });
    expect(scopedDeviceOf(hubWide)).toBeUndefined();
    const scoped = verifyServiceSas(
      signServiceSas('localhost/devices/dev2', 'iothubowner', KEY, SE),
      POLICIES,
      'localhost',
      NOW,
    );
    expect(scoped.resource.segments).toEqual(['devices', 'dev2']);
    expect(scopedDeviceOf(scoped)).toBe('dev2');
  });

  it('refuses every failure with UNAUTHORIZED, a different reason for each, and no key or signature in it', () => {
    const forged = signServiceSas('localhost', 'iothubowner', Buffer.alloc(32, 8).toString('base64'), SE);
    const tokens = [
      undefined,
      'Bearer x',
      'SharedAccessSignature sr=localhost&sig=abc&se=1',
      signServiceSas('localhost', 'nobody', KEY, SE),
      forged,
      signServiceSas('localhost', 'iothubowner', KEY, NOW / 1000),
      signServiceSas('localhost', 'iothubowner', KEY, NOW / 1000 + 366 * 86_400),
      signServiceSas('other', 'iothubowner', KEY, SE),
      signServiceSas('localhost', 'iothubowner', KEY, 1).replace('se=1', `se=${'9'.repeat(40)}`),
    ];
    const reasons = tokens.map((t) => reasonOf(() => verifyServiceSas(t, POLICIES, 'localhost', NOW)));
    expect(reasons.every((r) => typeof r === 'string')).toBe(true);
    expect(new Set(reasons).size).toBe(reasons.length);
    const sig = decodeURIComponent(/sig=([^&]+)/.exec(forged)![1]!);
    for (const r of reasons) for (const secret of [KEY, sig]) expect(r).not.toContain(secret);
    // ... while the HTTP text is one for all
    const texts = tokens.map((t) => {
      try {
        verifyServiceSas(t, POLICIES, 'localhost', NOW);
      } catch (e) {
        return iotHubErrorBody(e, NOW).body.Message;
      }
      return undefined;
    });
    expect(new Set(texts)).toEqual(new Set(['ErrorCode:IotHubUnauthorizedAccess;Unauthorized']));
  });

  it('applies maxTokenLifetimeMs', () => {
    expect(
      reasonOf(() =>
        verifyServiceSas(signServiceSas('localhost', 'iothubowner', KEY, SE), POLICIES, 'localhost', NOW, {
          maxTokenLifetimeMs: 3_599_000,
        }),
      ),
    ).toMatch(/lifetime/);
    expect(
      reasonOf(() =>
        verifyServiceSas(signServiceSas('localhost', 'iothubowner', KEY, SE), POLICIES, 'localhost', NOW, {
          maxTokenLifetimeMs: 3_600_000,
        }),
      ),
    ).toBeUndefined();
  });
});

describe('assertScope', () => {
  const principal = (resource: string): Principal =>
    verifyServiceSas(signServiceSas(resource, 'iothubowner', KEY, SE), POLICIES, 'localhost', NOW);

  it('lets a hub-wide token do anything, a device token only its device', () => {
    expect(() => assertScope(principal('localhost'), 'localhost', { kind: 'hub' })).not.toThrow();
    expect(() => assertScope(principal('localhost'), 'localhost', { kind: 'device', deviceId: 'dev1' })).not.toThrow();
    const dev2 = principal('localhost/devices/dev2');
    expect(() => assertScope(dev2, 'localhost', { kind: 'device', deviceId: 'dev2' })).not.toThrow();
    expect(reasonOf(() => assertScope(dev2, 'localhost', { kind: 'device', deviceId: 'dev1' }))).toBe(
      'token scope /devices/dev2 does not cover device dev1',
    );
    expect(reasonOf(() => assertScope(dev2, 'localhost', { kind: 'hub' }))).toBe(
      'token scope /devices/dev2 does not cover a hub-wide operation',
    );
  });
});
