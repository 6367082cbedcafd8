import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { createDeviceKeyStore, isDisabled, withDeviceStatus, type DeviceKeys } from './deviceKeyStore.ts';

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

  it.each([
    ['memory', false],
    ['file', true],
  ] as const)("lists a device's modules, the rows {deviceId}/{moduleId} (%s)", (_, onFile) => {
    let file: string | undefined;
    if (onFile) {
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
      dirs.push(dir);
      file = join(dir, 'registry.db');
    }
    const store = createDeviceKeyStore(file);
    const k = { primaryKey: 'a', secondaryKey: 'b', generationId: '1' };
    for (const id of ['gw', 'gw/b', 'gw/a', 'gw-2/a', 'gw.x', 'g', 'gw0']) store.set(id, k);
    expect(store.modulesOf!('gw')).toEqual(['a', 'b']);
    expect(store.modulesOf!('gw-2')).toEqual(['a']);
    expect(store.modulesOf!('g')).toEqual([]);
    store.delete('gw/a');
    expect(store.modulesOf!('gw')).toEqual(['b']);
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
    writeFileSync(legacy, JSON.stringify({ old1: { primaryKey: 'a', secondaryKey: 'b', generationId: '1' } }), {
      mode: 0o600,
    });
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
    for (let i = 0; i < 2_000; i++)
      store.set(`d${i}`, { primaryKey: `p${i}`, secondaryKey: `s${i}`, generationId: String(i) });
    store.delete('d7');
    const again = createDeviceKeyStore(join(dir, 'registry.db'));
    expect(again.get('d1999')?.primaryKey).toBe('p1999');
    expect(again.get('d7')).toBeUndefined();
    expect(again.get('d8')?.secondaryKey).toBe('s8');
  });

  it('keeps a device status with its keys; a row without one (earlier versions) reads as enabled', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const file = join(dir, 'registry.db');
    const store = createDeviceKeyStore(file);
    store.set('old', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare("SELECT keys FROM device_keys WHERE device_id = 'old'").get()).toEqual({
      keys: '{"primaryKey":"a","secondaryKey":"b","generationId":"1"}',
    });
    raw.close();
    expect(isDisabled(store.get('old'))).toBe(false);
    const t = Date.parse('2026-12-06T10:00:00Z');
    store.set(
      'dev1',
      withDeviceStatus(
        { primaryKey: 'c', secondaryKey: 'd', generationId: '2' },
        { status: 'disabled', statusReason: 'stolen' },
        t,
      ),
    );
    expect(createDeviceKeyStore(file).get('dev1')).toEqual({
      primaryKey: 'c',
      secondaryKey: 'd',
      generationId: '2',
      status: 'disabled',
      statusReason: 'stolen',
      statusUpdatedTime: '2026-12-06T10:00:00.000Z',
    });
    expect(isDisabled(store.get('dev1'))).toBe(true);
  });

  it('withDeviceStatus keeps what is not given, clears a reason given as null, and stamps only a change of status', () => {
    const base: DeviceKeys = { primaryKey: 'a', secondaryKey: 'b', generationId: '1', modelId: 'dtmi:x;1' };
    const t1 = Date.parse('2026-12-06T10:00:00Z');
    const t2 = Date.parse('2026-12-06T11:00:00Z');
    expect(withDeviceStatus(base, {}, t1)).toEqual(base);
    expect(withDeviceStatus(base, { status: 'enabled' }, t1)).toEqual({ ...base, status: 'enabled' }); // no change: no stamp
    const off = withDeviceStatus(base, { status: 'disabled', statusReason: 'maintenance' }, t1);
    expect(off).toEqual({
      ...base,
      status: 'disabled',
      statusReason: 'maintenance',
      statusUpdatedTime: '2026-12-06T10:00:00.000Z',
    });
    expect(withDeviceStatus(off, { statusReason: 'still' }, t2)).toMatchObject({
      status: 'disabled',
      statusReason: 'still',
      statusUpdatedTime: '2026-12-06T10:00:00.000Z',
    });
    const on = withDeviceStatus(off, { status: 'enabled', statusReason: null }, t2);
    expect(on).toEqual({ ...base, status: 'enabled', statusUpdatedTime: '2026-12-06T11:00:00.000Z' });
  });

  it('tells its listeners about every set and delete, in memory and on a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    for (const store of [createDeviceKeyStore(), createDeviceKeyStore(join(dir, 'registry.db'))]) {
      const seen: [string, string | undefined][] = [];
      const stop = store.onChange!((id, k) => seen.push([id, k?.status]));
      store.set('dev1', { primaryKey: 'a', secondaryKey: 'b', generationId: '1', status: 'disabled' });
      store.delete('dev1');
      stop();
      store.set('dev2', { primaryKey: 'a', secondaryKey: 'b', generationId: '1' });
      expect(seen).toEqual([
        ['dev1', 'disabled'],
        ['dev1', undefined],
      ]);
    }
  });

  it('lists the disabled devices from an index of the disabled rows, and says when another process wrote', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-keys-'));
    dirs.push(dir);
    const file = join(dir, 'registry.db');
    const gateway = createDeviceKeyStore(file);
    const cli = createDeviceKeyStore(file); // another connection, as the CLI in another process
    for (let i = 0; i < 200; i++) gateway.set(`d${i}`, { primaryKey: 'a', secondaryKey: 'b', generationId: String(i) });
    expect(gateway.disabledDevices!()).toEqual([]);
    const v0 = gateway.externalVersion!();
    gateway.set('d1', { ...gateway.get('d1')!, modelId: 'm' });
    expect(gateway.externalVersion!()).toBe(v0); // its own writes: told through onChange instead
    cli.set('d7', withDeviceStatus(cli.get('d7')!, { status: 'disabled' }, Date.now()));
    cli.set('d9', withDeviceStatus(cli.get('d9')!, { status: 'disabled' }, Date.now()));
    const v1 = gateway.externalVersion!();
    expect(v1).not.toBe(v0);
    expect(gateway.disabledDevices!().sort()).toEqual(['d7', 'd9']);
    cli.set('d7', withDeviceStatus(cli.get('d7')!, { status: 'enabled' }, Date.now()));
    expect(gateway.externalVersion!()).not.toBe(v1);
    expect(gateway.disabledDevices!()).toEqual(['d9']);
    const raw = new Database(file, { readonly: true });
    const plan = raw
      .prepare(`EXPLAIN QUERY PLAN SELECT device_id FROM device_keys WHERE json_extract(keys, '$.status') = 'disabled'`)
      .all() as { detail: string }[];
    raw.close();
    expect(plan.map((p) => p.detail).join(' ')).toContain('device_keys_disabled'); // not a scan of the fleet
  });

  it('lists the disabled devices in memory too', () => {
    const store = createDeviceKeyStore();
    store.set('a', { primaryKey: 'a', secondaryKey: 'b', generationId: '1', status: 'disabled' });
    store.set('b', { primaryKey: 'a', secondaryKey: 'b', generationId: '1', status: 'enabled' });
    expect(store.disabledDevices!()).toEqual(['a']);
    expect(store.externalVersion!()).toBe(store.externalVersion!());
  });
});
