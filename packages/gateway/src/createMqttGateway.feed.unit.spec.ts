/**
 * The MQTT gateway's feed (`twin.changes`, `twin.rejections`) is a supervised stage, `mqtt-feed`:
 * when its consumer dies it is restarted with backoff, resuming where it stopped, and a device
 * connected all along gets the desired changes made during and after the outage, and its reported
 * PATCHes are answered again. In-memory log with a real projector; the gateway's log is a wrapper
 * whose feed subscriptions can be made to crash or to refuse to start. Real sockets on 127.0.0.1.
 */
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import type { Log, ObservableSubscription, StageState, SubscribeOptions } from '@twinlog/core';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMqttGateway, type ListeningMqttGateway, type MqttGateway } from './createMqttGateway.ts';
import { createDeviceKeyStore, newDeviceKeys, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signDeviceSas } from './internal/verifyDeviceSas.ts';

const HUB = 'localhost';
const API = 'api-version=2021-04-12';

/** The log, except that the gateway's feed subscriptions obey the test: crash on demand, refuse to start. */
function controlledLog(inner: Log) {
  const control = {
    /** Subscribe attempts of the feed that throw next. */
    refuse: 0,
    attempts: 0,
    /** Make the live feed subscription's consumer die. */
    crash: (_e: Error): void => {},
  };
  const subscribe = async (options: SubscribeOptions): Promise<ObservableSubscription> => {
    if (!options.group.startsWith('twinlog-gateway-mqtt-')) return inner.subscribe(options);
    control.attempts++;
    if (control.refuse > 0) {
      control.refuse--;
      throw new Error('connect ECONNREFUSED 127.0.0.1:9092');
    }
    const sub = await inner.subscribe(options);
    let die: (e: Error) => void = () => {};
    const done = new Promise<void>((_, reject) => (die = reject));
    done.catch(() => {});
    control.crash = (e) => die(e);
    return { done, stop: () => sub.stop() };
  };
  const log = new Proxy(inner, {
    get(target, key) {
      if (key === 'subscribe') return subscribe;
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { log, control };
}

let inner: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let keys: DeviceKeyStore;
let gateway: MqttGateway | undefined;
let listening: ListeningMqttGateway | undefined;
const devices: mqtt.MqttClient[] = [];

beforeEach(async () => {
  inner = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(inner, 2);
  projector = await startProjector({ log: inner, physicalNow: Date.now, settleIntervalMs: 10 });
  client = createTwinClient({
    log: inner,
    physicalNow: Date.now,
    actor: 'feed-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 5000,
  });
  keys = createDeviceKeyStore();
  await client.createDevice('dev', { wait: true });
  keys.set('dev', newDeviceKeys());
});

afterEach(async () => {
  for (const d of devices.splice(0)) d.end(true);
  await listening?.close();
  await gateway?.close();
  listening = undefined;
  gateway = undefined;
  await client.close();
  await projector.stop();
  await inner.close();
});

async function connectDevice(
  port: number,
  deviceId: string,
): Promise<{ device: mqtt.MqttClient; desired: Record<string, unknown>[] }> {
  const device = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: deviceId,
    username: `${HUB}/${deviceId}/?${API}`,
    password: signDeviceSas(HUB, deviceId, keys.get(deviceId)!.primaryKey, Math.floor(Date.now() / 1000) + 600),
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  devices.push(device);
  await new Promise<void>((resolve, reject) => {
    device.once('connect', () => resolve());
    device.once('error', reject);
  });
  const desired: Record<string, unknown>[] = [];
  device.on('message', (topic, payload) => {
    if (topic.startsWith('$iothub/twin/PATCH/properties/desired/'))
      desired.push(JSON.parse(payload.toString()) as Record<string, unknown>);
  });
  await new Promise<void>((resolve, reject) =>
    device.subscribe(['$iothub/twin/PATCH/properties/desired/#', '$iothub/twin/res/#'], { qos: 0 }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  return { device, desired };
}

/** A reported PATCH over MQTT: the response's status (204 once the projector's decision came through the feed). */
async function reported(device: mqtt.MqttClient, patch: Record<string, unknown>): Promise<string> {
  const rid = String(Math.floor(Math.random() * 1e9));
  const answer = new Promise<string>((resolve) => {
    const onMessage = (t: string): void => {
      if (!t.includes(`$rid=${rid}`)) return;
      device.off('message', onMessage);
      resolve(t.split('/')[3]!);
    };
    device.on('message', onMessage);
  });
  device.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${rid}`, JSON.stringify(patch));
  return answer;
}

describe('MQTT gateway feed (self-healing)', { timeout: 30_000 }, () => {
  it('restarts the feed after its consumer dies: one log-worthy change per state, desired changes made during and after reach the device, reported PATCHes answered', async () => {
    const { log, control } = controlledLog(inner);
    const changes: [StageState, StageState, number][] = [];
    gateway = createMqttGateway({
      log,
      client,
      hubName: HUB,
      physicalNow: Date.now,
      deviceKeys: keys,
      restart: { minBackoffMs: 50, maxBackoffMs: 200 },
      onFeedStateChange: (h, previous) => changes.push([previous, h.state, h.restarts]),
    });
    listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
    await vi.waitFor(
      () => expect(gateway!.health()).toMatchObject({ stage: 'mqtt-feed', state: 'consuming', restarts: 0 }),
      { interval: 20 },
    );
    const { device, desired } = await connectDevice(listening.port, 'dev');

    await client.mergeDesired('dev', { mode: 'eco' }, { wait: true });
    await vi.waitFor(() => expect(desired).toContainEqual({ mode: 'eco', $version: 2 }), { interval: 20 });
    expect(await reported(device, { temp: 20 })).toBe('204');

    // the consumer dies, and the next two starts fail (the broker still away)
    control.refuse = 2;
    control.crash(new Error('KafkaJSNonRetriableError: Connection error: connect ECONNREFUSED'));
    await vi.waitFor(() => expect(gateway!.health().state).toBe('restarting'), { interval: 5 });
    await client.mergeDesired('dev', { mode: 'boost' }, { wait: true }); // decided while the feed is down
    await vi.waitFor(() => expect(gateway!.health()).toMatchObject({ state: 'consuming', restarts: 3 }), {
      interval: 20,
    });
    expect(control.attempts).toBe(4);

    // what was decided during the outage is delivered (the new run resumed where the last one stopped), and so is what comes after
    await vi.waitFor(() => expect(desired).toContainEqual({ mode: 'boost', $version: 3 }), { interval: 20 });
    await client.mergeDesired('dev', { mode: 'off' }, { wait: true });
    await vi.waitFor(() => expect(desired).toContainEqual({ mode: 'off', $version: 4 }), { interval: 20 });
    expect(desired.map((d) => d['$version'])).toEqual([2, 3, 4]);
    expect(await reported(device, { temp: 21 })).toBe('204');

    // one change per state, not per retry
    expect(changes).toEqual([
      ['starting', 'consuming', 0],
      ['consuming', 'restarting', 0],
      ['restarting', 'consuming', 3],
    ]);

    await gateway.close();
    expect(gateway.health().state).toBe('stopped');
    const attempts = control.attempts;
    await new Promise((r) => setTimeout(r, 300));
    expect(control.attempts).toBe(attempts); // no restart after close()
  });

  it('a first start that fails fails listen() (as before), the supervisor retrying meanwhile; a later listen() succeeds once it consumes', async () => {
    const { log, control } = controlledLog(inner);
    control.refuse = 1;
    gateway = createMqttGateway({
      log,
      client,
      hubName: HUB,
      physicalNow: Date.now,
      deviceKeys: keys,
      restart: { minBackoffMs: 50, maxBackoffMs: 200 },
    });
    await expect(gateway.listen({ port: 0, host: '127.0.0.1' })).rejects.toThrow(/ECONNREFUSED/);
    await vi.waitFor(() => expect(gateway!.health()).toMatchObject({ state: 'consuming', restarts: 1 }), {
      interval: 20,
    });
    listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
    const { desired } = await connectDevice(listening.port, 'dev');
    await client.mergeDesired('dev', { mode: 'eco' }, { wait: true });
    await vi.waitFor(() => expect(desired).toContainEqual({ mode: 'eco', $version: 2 }), { interval: 20 });
  });
});
