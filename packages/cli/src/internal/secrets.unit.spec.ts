/**
 * Secrets on disk (docs/security.md): the data folder is the owner's only, and the files that hold
 * keys (the service policy, the device-key registry) are written 0600, even over a folder or files
 * an older version left world-readable.
 */
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceKeyStore, newDeviceKeys } from '@twinlog/gateway';
import { afterEach, describe, expect, it } from 'vitest';
import { registryFileOf } from './openStore.ts';
import { resolveConfig } from './resolveConfig.ts';
import { servicePolicy } from './serve.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const modeOf = (path: string): number => statSync(path).mode & 0o777;

describe('secrets on disk', () => {
  it('the generated service policy is 0600 in a 0700 data folder, and is read back', () => {
    const root = mkdtempSync(join(tmpdir(), 'twinlog-secrets-'));
    dirs.push(root);
    const config = resolveConfig({ data: join(root, 'data') }, {});
    const policy = servicePolicy(config);
    expect(modeOf(policy.file!)).toBe(0o600);
    expect(modeOf(config.data)).toBe(0o700);
    expect(servicePolicy(config).key).toBe(policy.key);
  });

  it('the device-key registry is rewritten 0600 and its folder 0700 over world-readable leftovers', () => {
    const root = mkdtempSync(join(tmpdir(), 'twinlog-secrets-'));
    dirs.push(root);
    const config = resolveConfig({ data: root }, {});
    const file = registryFileOf(config);
    createDeviceKeyStore(file).set('dev0', newDeviceKeys());
    chmodSync(root, 0o755);
    chmodSync(file, 0o644); // as a copy or an older version may have left it
    createDeviceKeyStore(file).set('dev1', newDeviceKeys());
    expect(modeOf(file)).toBe(0o600);
    expect(modeOf(root)).toBe(0o700);
  });
});
