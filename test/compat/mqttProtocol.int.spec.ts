/**
 * The MQTT gateway on the wire (docs/iot-hub.md, "MQTT"), with a raw MQTT 3.1.1 client over TLS:
 * CONNACK codes for bad credentials, the twin topics and their bodies, IoT Hub error codes, the
 * per-device ACL, and catch-up for sessions with and without CleanSession. Embedded backend.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signDeviceSas } from '@twinlog/gateway';
import { startHub, type Hub } from './support/compatHarness.ts';
import { rawConnect, type RawClient } from './support/rawMqtt.ts';

const API = 'api-version=2021-04-12';

let hub: Hub;
const open: RawClient[] = [];
beforeEach(async () => {
  hub = await startHub('embedded');
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.end().catch(() => {});
  await hub.close();
});

async function createDevice(deviceId: string): Promise<string> {
  const { responseBody } = await hub.registry.create({ deviceId });
  return responseBody.authentication!.symmetricKey!.primaryKey;
}

interface ConnectAs {
  readonly clientId?: string;
  readonly username?: string;
  readonly password?: string;
  readonly clean?: boolean;
}

async function connect(deviceId: string, key: string, overrides: ConnectAs = {}): Promise<RawClient> {
  const host = `localhost:${hub.mqttPort}`;
  const c = await rawConnect({
    port: hub.mqttPort,
    ca: hub.ca.ca,
    clientId: overrides.clientId ?? deviceId,
    username: overrides.username ?? `${host}/${deviceId}/?${API}`,
    password: overrides.password ?? signDeviceSas(host, deviceId, key, Math.floor(Date.now() / 1000) + 3600),
    clean: overrides.clean ?? false,
  });
  open.push(c);
  return c;
}

const json = (b: Buffer): Record<string, unknown> => JSON.parse(b.toString('utf8')) as Record<string, unknown>;

describe('MQTT gateway: authentication', () => {
  it('answers CONNACK 0 to a valid token and 2, 4 or 5 to bad ones, and keeps serving', async () => {
    const key = await createDevice('dev1');
    const otherKey = Buffer.alloc(32, 9).toString('base64');
    const host = `localhost:${hub.mqttPort}`;
    const nowS = Math.floor(Date.now() / 1000);
    expect((await connect('dev1', otherKey)).returnCode).toBe(5); // forged: signed with another key
    expect((await connect('dev1', key, { password: signDeviceSas(host, 'dev1', key, nowS - 10) })).returnCode).toBe(5); // expired
    expect((await connect('dev1', key, { password: signDeviceSas(host, 'dev2', key, nowS + 3600) })).returnCode).toBe(
      5,
    ); // for another device
    expect((await connect('nobody', key)).returnCode).toBe(5); // unknown device
    expect((await connect('dev1', key, { password: 'hunter2' })).returnCode).toBe(4); // not a SAS token
    expect((await connect('dev1', key, { username: `${host}/dev2/?${API}` })).returnCode).toBe(2); // username names another device
    expect((await connect('dev1', key, { username: `other-hub/dev1/?${API}` })).returnCode).toBe(5);
    const ok = await connect('dev1', key);
    expect(ok.returnCode).toBe(0);
  });
});

describe('MQTT gateway: token expiry', () => {
  it('closes a connection when its token expires', async () => {
    const key = await createDevice('dev1');
    const host = `localhost:${hub.mqttPort}`;
    const c = await connect('dev1', key, {
      password: signDeviceSas(host, 'dev1', key, Math.floor(Date.now() / 1000) + 2),
    });
    expect(c.returnCode).toBe(0);
    await c.closed;
    expect(hub.mqtt.connectedDevices()).not.toContain('dev1');
  });
});

describe('MQTT gateway: twin topics', () => {
  it('GET answers 200 with desired and reported (no $metadata, no tags); a reported PATCH answers 204 with the new $version after the projector applied it', async () => {
    const key = await createDevice('dev1');
    await hub.registry.updateTwin('dev1', { tags: { secret: 'x' }, properties: { desired: { fw: '1.2' } } }, '*');
    const c = await connect('dev1', key);
    expect(await c.subscribe(['$iothub/twin/res/#'])).toEqual([0]);
    c.publish('$iothub/twin/GET/?$rid=1', ' ');
    const get = await c.next('$iothub/twin/res/');
    expect(get.topic).toBe('$iothub/twin/res/200/?$rid=1');
    expect(json(get.payload)).toEqual({ desired: { fw: '1.2', $version: 2 }, reported: { $version: 1 } });

    c.publish('$iothub/twin/PATCH/properties/reported/?$rid=2', JSON.stringify({ temp: 21, gone: null }), 1);
    const patched = await c.next('$iothub/twin/res/');
    expect(patched.topic).toBe('$iothub/twin/res/204/?$rid=2&$version=2');
    expect(patched.payload.length).toBe(0);
    c.publish('$iothub/twin/GET/?$rid=3', '');
    expect(json((await c.next('$iothub/twin/res/')).payload)).toEqual({
      desired: { fw: '1.2', $version: 2 },
      reported: { temp: 21, $version: 2 },
    });
  });

  it('answers bad requests with IoT Hub error codes and keeps the connection', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/res/#']);
    const cases: [string, string, number, number][] = [
      ['$iothub/twin/PATCH/properties/reported/?$rid=a', '{not json', 400, 400004],
      ['$iothub/twin/PATCH/properties/reported/?$rid=b', '[1,2]', 400, 400004],
      ['$iothub/twin/PATCH/properties/reported/?$rid=c', JSON.stringify({ $bad: 1 }), 400, 400004],
      ['$iothub/twin/PATCH/properties/reported/?$rid=d', JSON.stringify({ a: [1, null] }), 400, 400004],
      ['$iothub/twin/PATCH/properties/reported/?$rid=e', JSON.stringify({ s: 'x'.repeat(5000) }), 400, 400004],
      ['$iothub/twin/PATCH/properties/desired/?$rid=f', JSON.stringify({ fw: 'mine' }), 403, 403001],
    ];
    for (const [topic, body, status, code] of cases) {
      c.publish(topic, body);
      const res = await c.next('$iothub/twin/res/');
      const rid = new URLSearchParams(topic.slice(topic.indexOf('?') + 1)).get('$rid');
      expect(res.topic).toBe(`$iothub/twin/res/${status}/?$rid=${rid}`);
      expect(json(res.payload)).toMatchObject({ errorCode: code, message: expect.any(String) as unknown });
    }
    // the device did not write desired, and the connection still works
    const { responseBody: twin } = await hub.registry.getTwin('dev1');
    expect(twin.properties.desired['fw']).toBeUndefined();
    c.publish('$iothub/twin/PATCH/properties/reported/?$rid=g', JSON.stringify({ ok: true }));
    expect((await c.next('$iothub/twin/res/')).topic).toBe('$iothub/twin/res/204/?$rid=g&$version=2');
  });

  it('a deleted device is disconnected and cannot connect again', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/res/#']);
    // the registry deletes the twin and the keys; the gateway drops the open connection
    await hub.registry.delete('dev1');
    await c.closed;
    const again = await connect('dev1', key);
    expect(again.returnCode).toBe(5);
  });
});

describe('MQTT gateway: access control', () => {
  it('refuses subscriptions to other devices and wildcards (SUBACK 0x80), closes a connection that publishes to another device', async () => {
    const key1 = await createDevice('dev1');
    const key2 = await createDevice('dev2');
    const c1 = await connect('dev1', key1);
    const c2 = await connect('dev2', key2);
    expect(
      await c1.subscribe([
        '#',
        'devices/dev2/messages/devicebound/#',
        '$iothub/twin/res/#',
        'devices/dev1/messages/devicebound/#',
      ]),
    ).toEqual([128, 128, 0, 0]);
    await c2.subscribe(['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#']);
    // dev1 asks for its twin: dev2 never sees the response, and tags never reach either
    await hub.registry.updateTwin('dev1', { tags: { secret: 's' } }, '*');
    c1.publish('$iothub/twin/GET/?$rid=r1', '');
    const res = await c1.next('$iothub/twin/res/');
    expect(res.payload.toString()).not.toContain('secret');
    c2.publish('$iothub/twin/GET/?$rid=r2', '');
    expect((await c2.next('$iothub/twin/res/')).topic).toBe('$iothub/twin/res/200/?$rid=r2');
    expect(c2.messages.map((m) => m.topic)).toEqual(['$iothub/twin/res/200/?$rid=r2']);

    c1.publish('devices/dev1/messages/events/', 'telemetry'); // its own: accepted
    c1.publish('devices/dev2/messages/events/', 'spoof');
    await c1.closed;
    const c3 = await connect('dev1', key1);
    c3.publish('$iothub/twin/GET/?$rid=q2', '', 2); // docs/iot-hub.md "MQTT (devices)": a QoS 2 PUBLISH closes the connection
    await c3.closed;
    // the gateway keeps serving the others
    c2.publish('$iothub/twin/GET/?$rid=r3', '');
    expect((await c2.next('$iothub/twin/res/')).topic).toBe('$iothub/twin/res/200/?$rid=r3');
  });
});

describe('MQTT gateway: desired notifications and catch-up', () => {
  it('sends each desired change in version order; tag-only changes notify nothing', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/PATCH/properties/desired/#']);
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 1 } } }, '*');
    await hub.registry.updateTwin('dev1', { tags: { t: 1 } }, '*');
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: null, b: { c: 1 } } } }, '*');
    const n1 = await c.next('$iothub/twin/PATCH/properties/desired/');
    const n2 = await c.next('$iothub/twin/PATCH/properties/desired/');
    expect([n1.topic, json(n1.payload)]).toEqual([
      '$iothub/twin/PATCH/properties/desired/?$version=2',
      { a: 1, $version: 2 },
    ]);
    expect([n2.topic, json(n2.payload)]).toEqual([
      '$iothub/twin/PATCH/properties/desired/?$version=3',
      { a: null, b: { c: 1 }, $version: 3 },
    ]);
  });

  it('delivers with QoS 1 to a QoS 1 subscription, twin requests with QoS 1 are acknowledged', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    expect(await c.subscribe(['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#'], 1)).toEqual([1, 1]);
    await hub.registry.updateTwin('dev1', { properties: { desired: { q: 1 } } }, '*');
    const n = await c.next('$iothub/twin/PATCH/properties/desired/');
    expect([n.qos, json(n.payload)]).toEqual([1, { q: 1, $version: 2 }]);
    c.publish('$iothub/twin/PATCH/properties/reported/?$rid=1', JSON.stringify({ q: 1 }), 1);
    const res = await c.next('$iothub/twin/res/');
    expect([res.qos, res.topic]).toEqual([1, '$iothub/twin/res/204/?$rid=1&$version=2']);
  });

  it('a replace is sent as the difference, removed keys null', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/PATCH/properties/desired/#']);
    const { responseBody: t } = await hub.registry.updateTwin('dev1', { properties: { desired: { x: 1, y: 2 } } }, '*');
    await c.next('$iothub/twin/PATCH/properties/desired/');
    await hub.replaceTwin('dev1', { properties: { desired: { y: 2, z: 3 } } }, t.etag);
    const n = await c.next('$iothub/twin/PATCH/properties/desired/');
    expect(json(n.payload)).toEqual({ x: null, z: 3, $version: 3 });
  });

  it('a CleanSession=1 device that re-subscribes after being offline gets one merged notification', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key, { clean: true });
    await c.subscribe(['$iothub/twin/PATCH/properties/desired/#']);
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 1, b: 1 } } }, '*');
    await c.next('$iothub/twin/PATCH/properties/desired/');
    await c.end();
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 2 } } }, '*');
    await hub.registry.updateTwin('dev1', { properties: { desired: { b: null, c: [1, 2] } } }, '*');
    const back = await connect('dev1', key, { clean: true });
    expect(back.sessionPresent).toBe(false);
    await back.subscribe(['$iothub/twin/PATCH/properties/desired/#']);
    const n = await back.next('$iothub/twin/PATCH/properties/desired/');
    expect([n.topic, json(n.payload)]).toEqual([
      '$iothub/twin/PATCH/properties/desired/?$version=4',
      { a: 2, b: null, c: [1, 2], $version: 4 },
    ]);
  });

  it('a CleanSession=0 session keeps its subscriptions across a reconnect: a change after it arrives with no new SUBSCRIBE', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#']);
    await hub.mqtt.disconnect('dev1'); // dropped by the server, as a network failure would
    await c.closed;
    const back = await connect('dev1', key);
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 1 } } }, '*');
    const n = await back.next('$iothub/twin/PATCH/properties/desired/');
    expect([n.topic, json(n.payload)]).toEqual([
      '$iothub/twin/PATCH/properties/desired/?$version=2',
      { a: 1, $version: 2 },
    ]);
    back.publish('$iothub/twin/GET/?$rid=x', '');
    expect((await back.next('$iothub/twin/res/')).topic).toBe('$iothub/twin/res/200/?$rid=x');
    // CleanSession=1 clears them
    await back.end();
    const clean = await connect('dev1', key, { clean: true });
    clean.publish('$iothub/twin/GET/?$rid=y', '');
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 2 } } }, '*');
    await expect(clean.next('$iothub/twin/', 1500)).rejects.toThrow('no message');
  });

  it('a CleanSession=0 device gets the merged notification right after CONNECT, without SUBSCRIBE, also after a gateway restart', async () => {
    const key = await createDevice('dev1');
    const c = await connect('dev1', key);
    await c.subscribe(['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#']);
    c.publish('$iothub/twin/GET/?$rid=1', '');
    await c.next('$iothub/twin/res/200');
    await c.end();
    await hub.stopMqtt();
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 1 } } }, '*');
    await hub.registry.updateTwin('dev1', { properties: { desired: { a: 2, b: true } } }, '*');
    await hub.startMqtt();
    const back = await connect('dev1', key);
    const n = await back.next('$iothub/twin/PATCH/properties/desired/');
    expect([n.topic, json(n.payload)]).toEqual([
      '$iothub/twin/PATCH/properties/desired/?$version=3',
      { a: 2, b: true, $version: 3 },
    ]);
    // and the restored subscription to responses works too
    back.publish('$iothub/twin/GET/?$rid=2', '');
    expect(json((await back.next('$iothub/twin/res/')).payload)).toMatchObject({
      desired: { a: 2, b: true, $version: 3 },
    });
  });
});
