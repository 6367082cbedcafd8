import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

  it('writes through to its database file and reads it back at start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const file = join(dir, 'registry.db');
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
    const file = join(dir, 'registry.db');
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
    const file = join(dir, 'data', 'registry.db');
    const store = createDeviceKeyStore(file);
    store.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
    chmodSync(file, 0o644);
    chmodSync(`${file}-wal`, 0o644);
    chmodSync(join(dir, 'data'), 0o755);
    store.set('dev2', { primaryKey: 'c', secondaryKey: 'd', generationId: '2' });
    for (const f of [file, `${file}-wal`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
  });

  it('imports the registry.json of earlier versions once, then removes it; a .json path opens the .db beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const legacy = join(dir, 'registry.json');
    writeFileSync(legacy, JSON.stringify({ old1: { primaryKey: 'a', secondaryKey: 'b', generationId: '1' } }), { mode: 0o600 });
    const store = createDeviceKeyStore(join(dir, 'registry.db'));
    expect(store.get('old1')).toEqual({ primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    expect(existsSync(legacy)).toBe(false);
    store.set('new1', { primaryKey: 'c', secondaryKey: 'd', generationId: '2' });
    const byOldPath = createDeviceKeyStore(legacy);
    expect(byOldPath.get('old1')?.primaryKey).toBe('a');
    expect(byOldPath.get('new1')?.primaryKey).toBe('c');
    expect(existsSync(legacy)).toBe(false);
  });

  it('keeps many devices, each write touching one row', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const store = createDeviceKeyStore(join(dir, 'registry.db'));
    for (let i = 0; i < 2_000; i++) store.set(`d${i}`, { primaryKey: `p${i}`, secondaryKey: `s${i}`, generationId: String(i) });
    store.delete('d7');
    const again = createDeviceKeyStore(join(dir, 'registry.db'));
    expect(again.get('d1999')?.primaryKey).toBe('p1999');
    expect(again.get('d7')).toBeUndefined();
    expect(again.get('d8')?.secondaryKey).toBe('s8');
  });
});
