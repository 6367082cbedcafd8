import { describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_LIMITS, DEFAULT_MQTT_LIMITS, resolveLimits } from './limits.ts';

describe('resolveLimits', () => {
  it('puts the given limits over the defaults', () => {
    expect(resolveLimits(DEFAULT_MQTT_LIMITS, undefined)).toEqual(DEFAULT_MQTT_LIMITS);
    const limits = resolveLimits(DEFAULT_MQTT_LIMITS, { maxPacketBytes: 1024, deviceRequestsPerSecond: 0.5 });
    expect(limits).toEqual({ ...DEFAULT_MQTT_LIMITS, maxPacketBytes: 1024, deviceRequestsPerSecond: 0.5 });
    expect(Object.isFrozen(limits)).toBe(true);
  });

  it('refuses values that would switch a limit off or misbehave', () => {
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { maxPacketBytes: 0 })).toThrow(RangeError);
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { maxConnections: Infinity })).toThrow(RangeError);
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { connectTimeoutMs: 1.5 })).toThrow(RangeError);
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { idleTimeoutMs: 2 ** 31 })).toThrow(/timer/);
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { deviceRequestsPerSecond: Number.NaN })).toThrow(RangeError);
    expect(() => resolveLimits(DEFAULT_MQTT_LIMITS, { nope: 1 } as unknown as { maxPacketBytes: number })).toThrow(
      /unknown limit/,
    );
    expect(() => resolveLimits(DEFAULT_HTTP_LIMITS, { headersTimeoutMs: 40_000 })).toThrow(/requestTimeoutMs/);
  });

  it('has defaults that are limits (no zero means "off")', () => {
    for (const v of [...Object.values(DEFAULT_MQTT_LIMITS), ...Object.values(DEFAULT_HTTP_LIMITS)])
      expect(v).toBeGreaterThan(0);
    expect(DEFAULT_MQTT_LIMITS.maxPacketBytes).toBe(256 * 1024);
    expect(DEFAULT_HTTP_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(DEFAULT_HTTP_LIMITS.requestTimeoutMs);
  });
});
