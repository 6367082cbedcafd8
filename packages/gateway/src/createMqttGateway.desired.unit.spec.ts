/**
 * Desired notifications are sent once per `$version`, in increasing order (docs/iot-hub.md,
 * "Offline catch-up"), when the gateway's feed of `twin.changes` trails the snapshots that a GET
 * and the subscribe-time catch-up read (on Kafka it always trails a little). The feed here is held
 * while a device is created, GETs its twin, subscribes and a back end writes desired, then released:
 * the device got v2 from the catch-up, and neither the late `createDeviceIdentity` record nor the
 * late v2 record may send it again. In-memory log with a real projector; real sockets on 127.0.0.1.
 */
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import type { Batch, Log, SubscribeOptions } from '@twinlog/core';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMqttGateway, type ListeningMqttGateway, type MqttGateway } from './createMqttGateway.ts';
import { createDeviceKeyStore, newDeviceKeys, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signDeviceSas } from './internal/verifyDeviceSas.ts';

const HUB = 'localhost';
const API = 'api-version=2021-04-12';
const DESIRED = '$iothub/twin/PATCH/properties/desired/';

/** The log, except that the gateway's feed batches wait while `held` (then run in order). */
function laggingFeed(inner: Log) {
  const feed = { held: false, queue: [] as (() => Promise<void>)[] };
  const subscribe = (options: SubscribeOptions) => {
    if (!options.group.startsWith('twinlog-gateway-mqtt-')) return inner.subscribe(options);
    return inner.subscribe({
      ...options,
      eachBatch: (batch: Batch) => {
        if (!feed.held) return options.eachBatch(batch);
        feed.queue.push(() => options.eachBatch(batch));
        return Promise.resolve();
      },
    });
  };
  const release = async (): Promise<void> => {
    feed.held = false;
    for (const run of feed.queue.splice(0)) await run();
  };
  const log = new Proxy(inner, {
    get(target, key) {
      if (key === 'subscribe') return subscribe;
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { log, feed, release };
}

let inner: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let keys: DeviceKeyStore;
let gateway: MqttGateway;
let listening: ListeningMqttGateway;
let lag: ReturnType<typeof laggingFeed>;
const devices: mqtt.MqttClient[] = [];

beforeEach(async () => {
  inner = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(inner, 2);
  projector = await startProjector({ log: inner, physicalNow: Date.now, settleIntervalMs: 5 });
  client = createTwinClient({
    log: inner,
    physicalNow: Date.now,
    actor: 'desired-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 5000,
  });
  keys = createDeviceKeyStore();
  lag = laggingFeed(inner);
  gateway = createMqttGateway({ log: lag.log, client, hubName: HUB, physicalNow: Date.now, deviceKeys: keys });
  listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  for (const d of devices.splice(0)) d.end(true);
  await lag.release();
  await listening.close();
  await gateway.close();
  await client.close();
  await projector.stop();
  await inner.close();
});

interface Device {
  readonly mqtt: mqtt.MqttClient;
  /** `$version` of each desired notification received (topic and body agree), in order. */
  readonly versions: number[];
}

async function connect(deviceId: string, clean: boolean): Promise<Device> {
  const device = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, {
    clientId: deviceId,
    username: `${HUB}/${deviceId}/?${API}`,
    password: signDeviceSas(HUB, deviceId, keys.get(deviceId)!.primaryKey, Math.floor(Date.now() / 1000) + 600),
    protocolVersion: 4,
    reconnectPeriod: 0,
    clean,
  });
  devices.push(device);
  await new Promise<void>((resolve, reject) => {
    device.once('connect', () => resolve());
    device.once('error', reject);
  });
  const versions: number[] = [];
  device.on('message', (topic, payload) => {
    if (!topic.startsWith(DESIRED)) return;
    const body = JSON.parse(payload.toString()) as { $version: number };
    expect(topic).toBe(`${DESIRED}?$version=${body.$version}`);
    versions.push(body.$version);
  });
  return { mqtt: device, versions };
}

const subscribe = (device: mqtt.MqttClient, filters: string[]): Promise<void> =>
  new Promise((resolve, reject) => device.subscribe(filters, { qos: 1 }, (e) => (e ? reject(e) : resolve())));

/** A twin GET over MQTT (as the SDKs do before subscribing to desired): resolves with the response body. */
async function get(device: mqtt.MqttClient, rid: string): Promise<{ desired: { $version: number } }> {
  const answer = new Promise<{ desired: { $version: number } }>((resolve) => {
    const onMessage = (t: string, p: Buffer): void => {
      if (!t.includes(`$rid=${rid}`)) return;
      device.off('message', onMessage);
      resolve(JSON.parse(p.toString()) as { desired: { $version: number } });
    };
    device.on('message', onMessage);
  });
  device.publish(`$iothub/twin/GET/?$rid=${rid}`, '');
  return answer;
}

const increasing = (vs: number[]): boolean => vs.every((v, i) => i === 0 || v > vs[i - 1]!);

describe('MQTT gateway: each desired $version is sent once', { timeout: 60_000 }, () => {
  it('subscribe + an immediate desired write while the feed trails, 20 times: every version arrives exactly once, in increasing order', async () => {
    for (let i = 0; i < 20; i++) {
      const id = `dev-${i}`;
      lag.feed.held = true; // the feed trails from the device's creation on
      await client.createDevice(id, { wait: true });
      keys.set(id, newDeviceKeys());
      const device = await connect(id, i % 2 === 0);
      await subscribe(device.mqtt, ['$iothub/twin/res/#']);
      expect((await get(device.mqtt, `g${i}`)).desired.$version).toBe(1);
      // the desired write lands around the SUBSCRIBE: just before it (the catch-up sends v2), just
      // after its SUBACK (the live record sends v2), or concurrently (either)
      const write = (): Promise<unknown> => client.mergeDesired(id, { step: i }, { wait: true });
      if (i % 3 === 0) await write().then(() => subscribe(device.mqtt, [`${DESIRED}#`]));
      else if (i % 3 === 1) await subscribe(device.mqtt, [`${DESIRED}#`]).then(write);
      else await Promise.all([subscribe(device.mqtt, [`${DESIRED}#`]), write()]);
      if (i % 3 === 0) await vi.waitFor(() => expect(device.versions).toEqual([2]), { interval: 5 });
      await lag.release(); // the late create and v2 records
      await vi.waitFor(() => expect(device.versions).toContain(2), { interval: 5 });
      await client.mergeDesired(id, { step: i, next: true }, { wait: true }); // live, feed in time
      await vi.waitFor(() => expect(device.versions).toContain(3), { interval: 5 });
      await new Promise((r) => setTimeout(r, 20)); // room for a duplicate to show up
      expect(device.versions, `device ${id}`).toEqual([2, 3]);
      device.mqtt.end(true);
    }
  });

  it('offline catch-up while the feed trails: one notification with the latest version, none of the missed ones again', async () => {
    await client.createDevice('dev', { wait: true });
    keys.set('dev', newDeviceKeys());
    const first = await connect('dev', false);
    await subscribe(first.mqtt, ['$iothub/twin/res/#', `${DESIRED}#`]);
    await client.mergeDesired('dev', { a: 1 }, { wait: true });
    await vi.waitFor(() => expect(first.versions).toEqual([2]), { interval: 5 });
    await new Promise<void>((resolve) => first.mqtt.end(false, {}, () => resolve()));
    await vi.waitFor(() => expect(gateway.isConnected('dev')).toBe(false), { interval: 5 });

    lag.feed.held = true;
    for (const desired of [{ a: 2 }, { b: 1 }, { a: null }]) await client.mergeDesired('dev', desired, { wait: true });
    const back = await connect('dev', false); // the session (and its subscriptions) restored: catch-up without SUBSCRIBE
    const bodies: unknown[] = [];
    back.mqtt.on('message', (t, p) => t.startsWith(DESIRED) && bodies.push(JSON.parse(p.toString())));
    await vi.waitFor(() => expect(back.versions).toEqual([5]), { interval: 5 });
    await lag.release(); // the records of v3, v4 and v5 arrive after the catch-up
    await client.mergeDesired('dev', { c: 1 }, { wait: true });
    await vi.waitFor(() => expect(back.versions).toContain(6), { interval: 5 });
    await new Promise((r) => setTimeout(r, 20));
    expect(back.versions).toEqual([5, 6]);
    expect(increasing(back.versions)).toBe(true);
    expect(bodies[0]).toEqual({ a: null, b: 1, $version: 5 });
  });
});
