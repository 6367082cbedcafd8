import { describe, expect, it } from 'vitest';
import {
  checkSasExpiry,
  DEFAULT_MAX_TOKEN_LIFETIME_MS,
  parseSasFields,
  parseSasResource,
  sasScopeCovers,
  type SasTarget,
} from './sasToken.ts';

const NOW = 1_700_000_000_000;
const S = NOW / 1000;

describe('checkSasExpiry (the one se rule of REST and MQTT)', () => {
  it('accepts an se in the future within the lifetime bound, with its expiry in ms', () => {
    expect(checkSasExpiry(String(S + 3600), NOW)).toEqual({ ok: true, expiresAtMs: NOW + 3_600_000 });
    expect(checkSasExpiry(String(S + DEFAULT_MAX_TOKEN_LIFETIME_MS / 1000), NOW)).toEqual({
      ok: true,
      expiresAtMs: NOW + DEFAULT_MAX_TOKEN_LIFETIME_MS,
    });
  });

  it('refuses an se more than maxTokenLifetimeMs ahead: the default is 365 days, configurable, Infinity turns it off', () => {
    expect(DEFAULT_MAX_TOKEN_LIFETIME_MS).toBe(365 * 86_400_000);
    expect(checkSasExpiry(String(S + DEFAULT_MAX_TOKEN_LIFETIME_MS / 1000 + 1), NOW)).toEqual({
      ok: false,
      problem: 'tooLong',
    });
    expect(checkSasExpiry(String(S + 3601), NOW, 3_600_000)).toEqual({ ok: false, problem: 'tooLong' });
    expect(checkSasExpiry(String(S + 3600), NOW, 3_600_000).ok).toBe(true);
    // an se written in ms (13 digits) is "too long", the same answer on REST and MQTT
    expect(checkSasExpiry(String(NOW + 3_600_000), NOW)).toEqual({ ok: false, problem: 'tooLong' });
    expect(checkSasExpiry(String(NOW + 3_600_000), NOW, Infinity).ok).toBe(true);
  });

  it('refuses an se at or before now as expired', () => {
    expect(checkSasExpiry(String(S), NOW)).toEqual({ ok: false, problem: 'expired' });
    expect(checkSasExpiry('0', NOW)).toEqual({ ok: false, problem: 'expired' });
  });

  it('refuses anything but a decimal number of seconds whose value in ms is a safe integer', () => {
    for (const se of [
      '',
      '-1',
      '1e9',
      ' 1700003600',
      '0x10',
      '1700003600.5',
      '9'.repeat(17),
      '9'.repeat(40),
      String(Math.ceil(Number.MAX_SAFE_INTEGER / 1000)),
    ]) {
      expect(checkSasExpiry(se, NOW, Infinity), se).toEqual({ ok: false, problem: 'malformed' });
    }
  });
});

describe('parseSasFields', () => {
  it('reads the fields by name in any order, as transmitted', () => {
    const f = parseSasFields('SharedAccessSignature se=1&skn=owner&sig=a%2Bb%3D&sr=hub%2Fdevices%2Fd');
    expect(Object.fromEntries(f!)).toEqual({ se: '1', skn: 'owner', sig: 'a%2Bb%3D', sr: 'hub%2Fdevices%2Fd' });
    expect(parseSasFields('Bearer x')).toBeUndefined();
    expect(parseSasFields(undefined)).toBeUndefined();
  });
});

describe('sasScopeCovers', () => {
  const covers = (sr: string, target: SasTarget, hub = 'myhub.azure-devices.net'): boolean => {
    const r = parseSasResource(sr);
    return r !== undefined && sasScopeCovers(r, hub, target);
  };
  const dev = (deviceId: string, moduleId?: string): SasTarget => ({
    kind: 'device',
    deviceId,
    ...(moduleId === undefined ? {} : { moduleId }),
  });
  const HUB_WIDE: SasTarget = { kind: 'hub' };

  it('a hub-wide token covers everything; the host compares case-insensitively and without a port', () => {
    for (const sr of [
      'myhub.azure-devices.net',
      'MyHub.Azure-Devices.NET',
      'myhub.azure-devices.net%2F',
      'myhub.azure-devices.net%3A443',
    ]) {
      expect(covers(sr, HUB_WIDE), sr).toBe(true);
      expect(covers(sr, dev('dev1')), sr).toBe(true);
    }
    expect(covers('otherhub.azure-devices.net', HUB_WIDE)).toBe(false);
    expect(covers('myhub.azure-devices.net.evil', dev('dev1'))).toBe(false);
  });

  it('a device token covers that device and its modules, not another device and not hub-wide operations', () => {
    const sr = encodeURIComponent('myhub.azure-devices.net/devices/dev2');
    expect(covers(sr, dev('dev2'))).toBe(true);
    expect(covers(sr, dev('dev2', 'm1'))).toBe(true);
    expect(covers(sr, dev('dev1'))).toBe(false);
    expect(covers(sr, dev('dev22'))).toBe(false); // whole segments, not a string prefix
    expect(covers(encodeURIComponent('myhub.azure-devices.net/devices/dev'), dev('dev2'))).toBe(false);
    expect(covers(encodeURIComponent('myhub.azure-devices.net/devices/DEV2'), dev('dev2'))).toBe(false); // ids are case-sensitive
    expect(covers(encodeURIComponent('MYHUB.azure-devices.net/Devices/dev2'), dev('dev2'))).toBe(true);
    expect(covers(sr, HUB_WIDE)).toBe(false);
  });

  it('`<hub>/devices` covers every device but no hub-wide operation; a module token only its module', () => {
    const all = encodeURIComponent('myhub.azure-devices.net/devices');
    expect(covers(all, dev('anything'))).toBe(true);
    expect(covers(all, HUB_WIDE)).toBe(false);
    const mod = encodeURIComponent('myhub.azure-devices.net/devices/dev2/modules/m1');
    expect(covers(mod, dev('dev2', 'm1'))).toBe(true);
    expect(covers(mod, dev('dev2'))).toBe(false);
    expect(covers(mod, dev('dev2', 'm2'))).toBe(false);
    expect(covers(encodeURIComponent('myhub.azure-devices.net/jobs'), HUB_WIDE)).toBe(false);
  });

  it('decodes sr once: an id with a percent sign is compared as the device id, not decoded again', () => {
    const sr = encodeURIComponent(`myhub.azure-devices.net/devices/${'a%41'}`);
    expect(covers(sr, dev('a%41'))).toBe(true);
    expect(covers(sr, dev('aA'))).toBe(false);
    expect(parseSasResource('%E0%A4%A')).toBeUndefined();
    expect(parseSasResource('%2Fdevices')).toBeUndefined();
  });
});
