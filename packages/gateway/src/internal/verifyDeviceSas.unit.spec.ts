import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CONNACK, DeviceAuthError, signDeviceSas, verifyDeviceSas } from './verifyDeviceSas.ts';

const KEY = Buffer.alloc(32, 1).toString('base64');
const SECONDARY = Buffer.alloc(32, 2).toString('base64');
const keysOf = (id: string) =>
  id === 'dev1' ? { primaryKey: KEY, secondaryKey: SECONDARY, generationId: '1' } : undefined;
const NOW = 1_700_000_000_000;
const SE = NOW / 1000 + 3600;
const USER = 'localhost:8883/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4';

function codeOf(f: () => unknown): number | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return e instanceof DeviceAuthError ? e.returnCode : -1;
  }
}

describe('verifyDeviceSas', () => {
  it('accepts a token signed with the primary or the secondary key, with or without the port in the host', () => {
    const pw = Buffer.from(signDeviceSas('localhost:8883', 'dev1', KEY, SE));
    expect(verifyDeviceSas('dev1', USER, pw, 'localhost', keysOf, NOW)).toEqual({
      deviceId: 'dev1',
      expiresAtMs: SE * 1000,
    });
    const pw2 = Buffer.from(signDeviceSas('localhost', 'dev1', SECONDARY, SE));
    expect(
      verifyDeviceSas(
        'dev1',
        'localhost/dev1/?api-version=2021-04-12&model-id=dtmi:a;1',
        pw2,
        'LOCALHOST',
        keysOf,
        NOW,
      ),
    ).toMatchObject({ modelId: 'dtmi:a;1' });
  });

  it('reads the token fields in any order', () => {
    const [, fields] = signDeviceSas('localhost', 'dev1', KEY, SE).split(' ');
    const reordered = `SharedAccessSignature ${fields!.split('&').reverse().join('&')}`;
    expect(verifyDeviceSas('dev1', USER, Buffer.from(reordered), 'localhost', keysOf, NOW).deviceId).toBe('dev1');
  });

  it('refuses with the CONNACK code of each failure', () => {
    const good = Buffer.from(signDeviceSas('localhost', 'dev1', KEY, SE));
    const other = Buffer.alloc(32, 3).toString('base64');
    expect(
      codeOf(() =>
        verifyDeviceSas(
          'dev1',
          USER,
          Buffer.from(signDeviceSas('localhost', 'dev1', other, SE)),
          'localhost',
          keysOf,
          NOW,
        ),
      ),
    ).toBe(CONNACK.NOT_AUTHORIZED);
    expect(codeOf(() => verifyDeviceSas('dev1', USER, good, 'localhost', keysOf, SE * 1000))).toBe(
      CONNACK.NOT_AUTHORIZED,
    ); // expired
    expect(
      codeOf(() =>
        verifyDeviceSas(
          'dev1',
          USER,
          Buffer.from(signDeviceSas('localhost', 'dev2', KEY, SE)),
          'localhost',
          keysOf,
          NOW,
        ),
      ),
    ).toBe(CONNACK.NOT_AUTHORIZED);
    expect(
      codeOf(() =>
        verifyDeviceSas('dev1', USER, Buffer.from(`${good.toString()}&skn=owner`), 'localhost', keysOf, NOW),
      ),
    ).toBe(CONNACK.NOT_AUTHORIZED);
    expect(
      codeOf(() => verifyDeviceSas('dev2', 'localhost/dev2/?api-version=2021-04-12', good, 'localhost', keysOf, NOW)),
    ).toBe(CONNACK.NOT_AUTHORIZED); // unknown
    expect(
      codeOf(() => verifyDeviceSas('dev1', 'otherhub/dev1/?api-version=2021-04-12', good, 'localhost', keysOf, NOW)),
    ).toBe(CONNACK.NOT_AUTHORIZED);
    expect(
      codeOf(() => verifyDeviceSas('dev1', 'localhost/dev2/?api-version=2021-04-12', good, 'localhost', keysOf, NOW)),
    ).toBe(CONNACK.IDENTIFIER_REJECTED);
    expect(codeOf(() => verifyDeviceSas('dev1/mod', USER, good, 'localhost', keysOf, NOW))).toBe(
      CONNACK.IDENTIFIER_REJECTED,
    ); // username of the device
    expect(
      codeOf(() =>
        verifyDeviceSas('dev1/a/b', 'localhost/dev1/a/b/?api-version=2021-04-12', good, 'localhost', keysOf, NOW),
      ),
    ).toBe(CONNACK.IDENTIFIER_REJECTED);
    expect(
      codeOf(() => verifyDeviceSas('dev1/', 'localhost/dev1//?api-version=2021-04-12', good, 'localhost', keysOf, NOW)),
    ).toBe(CONNACK.IDENTIFIER_REJECTED);
    expect(codeOf(() => verifyDeviceSas('dev1', undefined, good, 'localhost', keysOf, NOW))).toBe(
      CONNACK.BAD_USERNAME_OR_PASSWORD,
    );
    expect(codeOf(() => verifyDeviceSas('dev1', USER, undefined, 'localhost', keysOf, NOW))).toBe(
      CONNACK.BAD_USERNAME_OR_PASSWORD,
    );
    expect(codeOf(() => verifyDeviceSas('dev1', 'nonsense', good, 'localhost', keysOf, NOW))).toBe(
      CONNACK.BAD_USERNAME_OR_PASSWORD,
    );
    expect(
      codeOf(() =>
        verifyDeviceSas('dev1', USER, Buffer.from('SharedAccessSignature sr=x&sig=%E0%A4%A'), 'localhost', keysOf, NOW),
      ),
    ).toBe(CONNACK.BAD_USERNAME_OR_PASSWORD);
    expect(
      codeOf(() =>
        verifyDeviceSas(
          'dev1',
          USER,
          Buffer.from('SharedAccessSignature sr=localhost&sig=%E0%A4%A&se=9999999999'),
          'localhost',
          keysOf,
          NOW,
        ),
      ),
    ).toBe(CONNACK.NOT_AUTHORIZED);
  });

  it('applies the shared se rule: a lifetime over maxTokenLifetimeMs (default 365 days) is refused, an se in ms too', () => {
    const sign = (se: number) => Buffer.from(signDeviceSas('localhost', 'dev1', KEY, se));
    const year = 365 * 86_400;
    expect(verifyDeviceSas('dev1', USER, sign(NOW / 1000 + year), 'localhost', keysOf, NOW).expiresAtMs).toBe(
      NOW + year * 1000,
    );
    expect(codeOf(() => verifyDeviceSas('dev1', USER, sign(NOW / 1000 + year + 1), 'localhost', keysOf, NOW))).toBe(
      CONNACK.NOT_AUTHORIZED,
    );
    expect(codeOf(() => verifyDeviceSas('dev1', USER, sign(NOW + 3_600_000), 'localhost', keysOf, NOW))).toBe(
      CONNACK.NOT_AUTHORIZED,
    ); // 13 digits
    expect(
      codeOf(() => verifyDeviceSas('dev1', USER, sign(SE), 'localhost', keysOf, NOW, { maxTokenLifetimeMs: 60_000 })),
    ).toBe(CONNACK.NOT_AUTHORIZED);
    expect(
      verifyDeviceSas('dev1', USER, sign(SE), 'localhost', keysOf, NOW, { maxTokenLifetimeMs: 3_600_000 }).deviceId,
    ).toBe('dev1');
    expect(
      codeOf(() =>
        verifyDeviceSas(
          'dev1',
          USER,
          Buffer.from(`SharedAccessSignature sr=localhost&sig=x&se=${'9'.repeat(40)}`),
          'localhost',
          keysOf,
          NOW,
        ),
      ),
    ).toBe(CONNACK.BAD_USERNAME_OR_PASSWORD);
  });

  it('accepts an sr of the hub or of every device, refuses a string-prefix of another id', () => {
    const withSr = (resource: string) => {
      const sr = encodeURIComponent(resource);
      const sig = createHmac('sha256', Buffer.from(KEY, 'base64')).update(`${sr}\n${SE}`).digest('base64');
      return Buffer.from(`SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${SE}`);
    };
    expect(verifyDeviceSas('dev1', USER, withSr('LOCALHOST'), 'localhost', keysOf, NOW).deviceId).toBe('dev1');
    expect(verifyDeviceSas('dev1', USER, withSr('localhost:8883/devices'), 'localhost', keysOf, NOW).deviceId).toBe(
      'dev1',
    );
    expect(codeOf(() => verifyDeviceSas('dev1', USER, withSr('localhost/devices/dev'), 'localhost', keysOf, NOW))).toBe(
      CONNACK.NOT_AUTHORIZED,
    );
    expect(
      codeOf(() => verifyDeviceSas('dev1', USER, withSr('localhost/devices/DEV1'), 'localhost', keysOf, NOW)),
    ).toBe(CONNACK.NOT_AUTHORIZED);
  });

  describe('modules (docs/iot-hub.md, "Module identities and module twins")', () => {
    const MODULE_KEY = Buffer.alloc(32, 4).toString('base64');
    const withModules = (id: string) =>
      id === 'dev1/m1' ? { primaryKey: MODULE_KEY, secondaryKey: SECONDARY, generationId: '2' } : keysOf(id);
    const MODULE_USER = 'localhost:8883/dev1/m1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4';
    const sign = (resource: string, key: string, se = SE) => {
      const sr = encodeURIComponent(resource);
      const sig = createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${se}`).digest('base64');
      return Buffer.from(`SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`);
    };

    it('accepts a ModuleClient: client id {deviceId}/{moduleId}, a token for the module signed with its key; the twin id is {deviceId}/{moduleId}', () => {
      const pw = sign('localhost:8883/devices/dev1/modules/m1', MODULE_KEY);
      expect(verifyDeviceSas('dev1/m1', MODULE_USER, pw, 'localhost', withModules, NOW)).toEqual({
        deviceId: 'dev1/m1',
        expiresAtMs: SE * 1000,
      });
    });

    it("refuses the device's key, another module's token, a username naming another identity, an unknown or disabled module", () => {
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m1',
            MODULE_USER,
            sign('localhost/devices/dev1/modules/m1', KEY),
            'localhost',
            withModules,
            NOW,
          ),
        ),
      ).toBe(CONNACK.NOT_AUTHORIZED);
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m1',
            MODULE_USER,
            sign('localhost/devices/dev1/modules/m2', MODULE_KEY),
            'localhost',
            withModules,
            NOW,
          ),
        ),
      ).toBe(CONNACK.NOT_AUTHORIZED);
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m1',
            MODULE_USER,
            sign('localhost/devices/dev2', MODULE_KEY),
            'localhost',
            withModules,
            NOW,
          ),
        ),
      ).toBe(CONNACK.NOT_AUTHORIZED);
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m1',
            USER,
            sign('localhost/devices/dev1/modules/m1', MODULE_KEY),
            'localhost',
            withModules,
            NOW,
          ),
        ),
      ).toBe(CONNACK.IDENTIFIER_REJECTED);
      expect(
        codeOf(() =>
          verifyDeviceSas('dev1', MODULE_USER, sign('localhost/devices/dev1', KEY), 'localhost', withModules, NOW),
        ),
      ).toBe(CONNACK.IDENTIFIER_REJECTED);
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m2',
            'localhost/dev1/m2/?api-version=2021-04-12',
            sign('localhost/devices/dev1/modules/m2', MODULE_KEY),
            'localhost',
            withModules,
            NOW,
          ),
        ),
      ).toBe(CONNACK.NOT_AUTHORIZED);
      const disabled = (id: string) =>
        id === 'dev1/m1' ? { ...withModules(id)!, status: 'disabled' as const } : withModules(id);
      expect(
        codeOf(() =>
          verifyDeviceSas(
            'dev1/m1',
            MODULE_USER,
            sign('localhost/devices/dev1/modules/m1', MODULE_KEY),
            'localhost',
            disabled,
            NOW,
          ),
        ),
      ).toBe(CONNACK.NOT_AUTHORIZED);
    });
  });
});
