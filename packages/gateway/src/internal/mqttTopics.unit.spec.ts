import { describe, expect, it } from 'vitest';
import { classifyPublish, maySubscribe, topicMatches } from './mqttTopics.ts';

describe('classifyPublish', () => {
  it('recognises the twin requests and the device’s own telemetry, nothing else', () => {
    expect(classifyPublish('d', '$iothub/twin/GET/?$rid=1')).toEqual({ kind: 'get', rid: '1' });
    expect(classifyPublish('d', '$iothub/twin/PATCH/properties/reported/?$rid=a%20b')).toEqual({
      kind: 'reported',
      rid: 'a b',
    });
    expect(classifyPublish('d', '$iothub/twin/PATCH/properties/desired/?$rid=1')).toEqual({
      kind: 'desired-write',
      rid: '1',
    });
    expect(classifyPublish('d', '$iothub/twin/DELETE/?$rid=1')).toEqual({ kind: 'unsupported-twin', rid: '1' });
    expect(classifyPublish('d', '$iothub/twin/GET/')).toEqual({ kind: 'forbidden' });
    expect(classifyPublish('d', 'devices/d/messages/events/')).toEqual({ kind: 'telemetry' });
    expect(classifyPublish('d', 'devices/d/messages/events/a=1')).toEqual({ kind: 'telemetry' });
    expect(classifyPublish('d', 'devices/e/messages/events/')).toEqual({ kind: 'forbidden' });
    expect(classifyPublish('d', 'devices/d/messages/devicebound/')).toEqual({ kind: 'forbidden' });
    expect(classifyPublish('d', '$SYS/x')).toEqual({ kind: 'forbidden' });
  });
});

describe('maySubscribe', () => {
  it('allows the device’s own topics only', () => {
    for (const f of [
      '$iothub/twin/res/#',
      '$iothub/twin/PATCH/properties/desired/#',
      '$iothub/methods/POST/#',
      'devices/d/messages/devicebound/#',
    ]) {
      expect(maySubscribe('d', f)).toBe(true);
    }
    for (const f of [
      '#',
      '+/#',
      '$iothub/#',
      'devices/+/messages/devicebound/#',
      'devices/e/messages/devicebound/#',
      'devices/d/messages/events/#',
    ]) {
      expect(maySubscribe('d', f)).toBe(false);
    }
    expect(maySubscribe('+', 'devices/+/messages/devicebound/#')).toBe(false); // a device named '+'
  });
  it('a module (twin id {deviceId}/{moduleId}) may publish its own telemetry and subscribe to its twin topics and its inputs', () => {
    expect(classifyPublish('d/m', 'devices/d/modules/m/messages/events/')).toEqual({ kind: 'telemetry' });
    expect(classifyPublish('d/m', 'devices/d/messages/events/')).toEqual({ kind: 'forbidden' });
    expect(classifyPublish('d/m', 'devices/d/modules/n/messages/events/')).toEqual({ kind: 'forbidden' });
    expect(classifyPublish('d/m', '$iothub/twin/GET/?$rid=1')).toEqual({ kind: 'get', rid: '1' });
    for (const f of ['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#', 'devices/d/modules/m/inputs/#'])
      expect(maySubscribe('d/m', f)).toBe(true);
    for (const f of [
      'devices/d/messages/devicebound/#',
      'devices/d/modules/n/inputs/#',
      'devices/d/modules/+/inputs/#',
    ])
      expect(maySubscribe('d/m', f)).toBe(false);
  });
});

describe('topicMatches', () => {
  it('follows MQTT 3.1.1 wildcards', () => {
    expect(topicMatches('$iothub/twin/res/#', '$iothub/twin/res/204/?$rid=1&$version=2')).toBe(true);
    expect(topicMatches('$iothub/twin/res/+/#', '$iothub/twin/res/200/?$rid=1')).toBe(true);
    expect(topicMatches('a/#', 'a')).toBe(true);
    expect(topicMatches('a/+', 'a/b/c')).toBe(false);
    expect(topicMatches('a/b', 'a/b')).toBe(true);
    expect(topicMatches('$iothub/twin/PATCH/properties/desired/#', '$iothub/twin/res/200/?$rid=1')).toBe(false);
  });
});
