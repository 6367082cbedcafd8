import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDeviceSessionStore, EMPTY_SESSION } from './deviceSessionStore.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-sessions-'));
  dirs.push(dir);
  return join(dir, 'sessions.jsonl');
}

describe('createDeviceSessionStore', () => {
  it('keeps the latest record per device across reopen, forgets emptied ones, survives a torn last line', () => {
    const f = file();
    const a = createDeviceSessionStore(f);
    a.set('dev1', { subscriptions: { '$iothub/twin/res/#': 0 }, desiredVersion: 3, desired: { fw: '1' } });
    a.set('dev1', { subscriptions: { '$iothub/twin/res/#': 0 }, desiredVersion: 4, desired: { fw: '2' } });
    a.set('dev2', { subscriptions: {}, desiredVersion: 1, desired: {} });
    a.set('dev2', EMPTY_SESSION);
    appendFileSync(f, '{"id":"dev3","s":{"subscr'); // a crash in the middle of a write
    const b = createDeviceSessionStore(f);
    expect(b.get('dev1')).toEqual({
      subscriptions: { '$iothub/twin/res/#': 0 },
      desiredVersion: 4,
      desired: { fw: '2' },
    });
    expect(b.get('dev2')).toEqual(EMPTY_SESSION);
    expect(b.get('dev3')).toEqual(EMPTY_SESSION);
    expect(b.size).toBe(1);
    expect(readFileSync(f, 'utf8').trim().split('\n')).toHaveLength(1); // compacted at open
  });

  it('compacts the journal when it grows', () => {
    const f = file();
    const s = createDeviceSessionStore(f);
    for (let i = 0; i < 3000; i++) s.set('dev1', { subscriptions: {}, desiredVersion: i, desired: {} });
    expect(readFileSync(f, 'utf8').trim().split('\n').length).toBeLessThan(1100);
    expect(createDeviceSessionStore(f).get('dev1').desiredVersion).toBe(2999);
  });
});
