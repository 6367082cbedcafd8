import { describe, expect, it } from 'vitest';
import type { TwinEvent } from './event.ts';
import { createTwinState } from './twinState.ts';
import { renderTwin } from './renderTwin.ts';
import { isValidDeviceId, isValidTwinId, moduleTwinId, parseTwinId, validateEvent } from './validateEvent.ts';

const base: TwinEvent = {
  v: 1,
  id: { writer: 'gw-1', seq: 1 },
  deviceId: 'dev-1',
  section: 'desired',
  op: 'merge',
  patch: { a: 1 },
  stamp: { wall: 1_000_000_000, counter: 0 },
  actor: 'svc',
};

describe('validateEvent', () => {
  it('accepts a well-formed event', () => {
    expect(validateEvent(base).ok).toBe(true);
    expect(validateEvent({ ...base, section: 'create', patch: {} }).ok).toBe(true);
  });
  it.each([
    ['DEVICE_ID_INVALID', { deviceId: 'has space' }],
    ['DEVICE_ID_INVALID', { deviceId: 'x'.repeat(129) }],
    ['DEVICE_ID_INVALID', { deviceId: 'dev/' }],
    ['DEVICE_ID_INVALID', { deviceId: '/mod' }],
    ['DEVICE_ID_INVALID', { deviceId: 'dev/mod/x' }],
    ['DEVICE_ID_INVALID', { deviceId: `dev/${'m'.repeat(129)}` }],
    ['EVENT_INVALID', { id: { writer: '', seq: 1 } }],
    ['EVENT_INVALID', { id: { writer: 'gw', seq: 2 ** 53 } }],
    ['STAMP_INVALID', { stamp: { wall: 2 ** 48, counter: 0 } }],
    ['STAMP_INVALID', { stamp: { wall: 1, counter: 65536 } }],
    ['EVENT_INVALID', { section: 'create', patch: { a: 1 } }],
    ['EVENT_INVALID', { section: 'nope' }],
    ['EVENT_INVALID', { op: 'append' }],
    ['KEY_INVALID', { patch: { $bad: 1 } }],
    ['NULL_IN_ARRAY', { patch: { a: [null] } }],
  ] as const)('rejects with %s: %j', (code, change) => {
    const r = validateEvent({ ...base, ...(change as Partial<TwinEvent>) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe(code);
  });
  it('rejects stamps too far ahead of or behind the append time', () => {
    const appendTime = base.stamp.wall;
    expect(validateEvent(base, { appendTime }).ok).toBe(true);
    expect(validateEvent({ ...base, stamp: { wall: appendTime + 300_000, counter: 0 } }, { appendTime }).ok).toBe(true);
    const ahead = validateEvent({ ...base, stamp: { wall: appendTime + 300_001, counter: 0 } }, { appendTime });
    expect(!ahead.ok && ahead.error.code).toBe('STAMP_SKEW');
    // the default offline window is one day (plus a minute of skew), as the GC horizon's
    expect(validateEvent(base, { appendTime: appendTime + 86_400_000 }).ok).toBe(true);
    const old = validateEvent(base, { appendTime: appendTime + 86_400_000 + 60_001 });
    expect(!old.ok && old.error.code).toBe('STAMP_SKEW');
    expect(
      validateEvent(base, { appendTime: appendTime + 31 * 86_400_000, maxOfflineWindowMs: 31 * 86_400_000 }).ok,
    ).toBe(true);
  });
  it('accepts a module twin id {deviceId}/{moduleId} (docs/iot-hub.md, "Module identities and module twins")', () => {
    expect(validateEvent({ ...base, deviceId: moduleTwinId('dev-1', 'sensor') }).ok).toBe(true);
    expect(isValidTwinId('dev-1/sensor')).toBe(true);
    expect(isValidDeviceId('dev-1/sensor')).toBe(false); // never a device's id
    expect(parseTwinId('dev-1/sensor')).toEqual({ deviceId: 'dev-1', moduleId: 'sensor' });
    expect(parseTwinId('dev-1')).toEqual({ deviceId: 'dev-1' });
  });
  it('renders a module twin with deviceId and moduleId, a device twin without moduleId', () => {
    const m = renderTwin(createTwinState('dev-1/sensor'));
    expect(m.deviceId).toBe('dev-1');
    expect(m.moduleId).toBe('sensor');
    expect('moduleId' in renderTwin(createTwinState('dev-1'))).toBe(false);
  });
});
