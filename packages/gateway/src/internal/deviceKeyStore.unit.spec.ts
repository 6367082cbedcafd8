import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDeviceKeyStore } from './deviceKeyStore.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('createDeviceKeyStore', () => {
  it('keeps keys in memory without a file', () => {
    const store = createDeviceKeyStore();
    store.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    expect(store.get('dev1')?.primaryKey).toBe('a');
    store.delete('dev1');
    expect(store.get('dev1')).toBeUndefined();
  });

  it('writes through to its JSON file and reads it back at start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const file = join(dir, 'registry.json');
    const first = createDeviceKeyStore(file);
    first.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    first.set('dev2', { primaryKey: 'c', secondaryKey: 'd', generationId: '2' });
    first.delete('dev2');
    const second = createDeviceKeyStore(file);
    expect(second.get('dev1')).toEqual({ primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    expect(second.get('dev2')).toBeUndefined();
  });

  it('sees what another store wrote to the same file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const file = join(dir, 'registry.json');
    const writer = createDeviceKeyStore(file);
    const reader = createDeviceKeyStore(file);
    expect(reader.get('dev1')).toBeUndefined();
    writer.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    expect(reader.get('dev1')?.primaryKey).toBe('a');
    writer.delete('dev1');
    expect(reader.get('dev1')).toBeUndefined();
  });

  it('writes the key file 0600 in a 0700 folder, even over a world-readable leftover', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    chmodSync(dir, 0o755);
    const file = join(dir, 'data', 'registry.json');
    const store = createDeviceKeyStore(file);
    store.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
    chmodSync(file, 0o644);
    chmodSync(join(dir, 'data'), 0o755);
    writeFileSync(`${file}.tmp`, 'stale', { mode: 0o644 });
    store.set('dev2', { primaryKey: 'c', secondaryKey: 'd', generationId: '2' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
  });
});
