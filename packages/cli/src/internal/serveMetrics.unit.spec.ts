/**
 * serve's histograms fed as serve feeds them (the projector's `onBatch`, the MQTT gateway's
 * diagnostics channel), on the in-memory log with a real projector and a real MQTT socket on
 * 127.0.0.1: a device's reported PATCH counts in the ack histogram, a desired write in the
 * notification histogram, the batches in the projector's.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import {
  createDeviceKeyStore,
  createMqttGateway,
  MQTT_GATEWAY_CHANNEL,
  newDeviceKeys,
  signDeviceSas,
  type DeviceKeyStore,
  type ListeningMqttGateway,
  type MqttGateway,
  type MqttGatewayEvent,
} from '@twinlog/gateway';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Metrics } from './createMetrics.ts';
import {
  createServeMetrics,
  observeMqttEvent,
  observeProjectorBatch,
  serveMetricDefinitions,
  timedQueryView,
} from './serveMetrics.ts';

const HUB = 'localhost';
const API = 'api-version=2021-04-12';

/** A sample's value in an exposition (`name{labels}` exactly as rendered), or undefined. */
async function sample(metrics: Metrics, series: string): Promise<number | undefined> {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('serve metrics', () => {
  it('declares every family with a HELP text and label names, histograms in seconds; the storage and MQTT families only where they apply', () => {
    const all = serveMetricDefinitions({ embedded: true, mqtt: true });
    for (const [name, d] of Object.entries(all)) {
      expect(name).toMatch(/^twinlog_[a-z_]+$/);
      expect(d.help.length, name).toBeGreaterThan(10);
      if (d.type === 'histogram') expect(name, name).toMatch(/_seconds$/);
      if (d.type === 'counter') expect(name, name).toMatch(/_total$/);
    }
    const kafka = Object.keys(serveMetricDefinitions({ embedded: false, mqtt: false }));
    expect(kafka.some((n) => n.startsWith('twinlog_store_') || n.startsWith('twinlog_mqtt_'))).toBe(false);
    expect(kafka).toContain('twinlog_projector_commit_seconds');
  });

  it('times queries of the read model by result', async () => {
    const metrics = createServeMetrics({ embedded: false, mqtt: false, defaultMetrics: false });
    const view = timedQueryView(
      { query: (text: string) => (text === 'bad' ? Promise.reject(new Error('no')) : Promise.resolve({ rows: [] })) },
      metrics,
    );
    await view.query('SELECT * FROM devices', {});
    await expect(view.query('bad', {})).rejects.toThrow('no');
    expect(await sample(metrics, 'twinlog_query_seconds_count{result="ok"}')).toBe(1);
    expect(await sample(metrics, 'twinlog_query_seconds_count{result="error"}')).toBe(1);
  });
});

describe('serve metrics fed by the projector and the MQTT gateway', { timeout: 30_000 }, () => {
  let log: InMemoryLog;
  let metrics: Metrics;
  let projector: Projector;
  let client: TwinClient;
  let keys: DeviceKeyStore;
  let gateway: MqttGateway;
  let listening: ListeningMqttGateway;
  const devices: mqtt.MqttClient[] = [];
  const onEvent = (e: unknown): void => observeMqttEvent(metrics, e as MqttGatewayEvent);

  beforeEach(async () => {
    metrics = createServeMetrics({ embedded: false, mqtt: true, defaultMetrics: false });
    log = createInMemoryLog({ now: Date.now });
    await ensureTwinTopics(log, 2);
    projector = await startProjector({
      log,
      physicalNow: Date.now,
      settleIntervalMs: 5,
      onBatch: (_p, _stats, detail) => observeProjectorBatch(metrics, detail),
    });
    client = createTwinClient({
      log,
      physicalNow: Date.now,
      actor: 'metrics-test',
      pollIntervalMs: 2,
      decisionTimeoutMs: 5000,
    });
    keys = createDeviceKeyStore();
    gateway = createMqttGateway({ log, client, hubName: HUB, physicalNow: Date.now, deviceKeys: keys });
    listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
    subscribe(MQTT_GATEWAY_CHANNEL, onEvent);
  });

  afterEach(async () => {
    unsubscribe(MQTT_GATEWAY_CHANNEL, onEvent);
    for (const d of devices.splice(0)) d.end(true);
    await listening.close();
    await gateway.close();
    await client.close();
    await projector.stop();
    await log.close();
  });

  async function connect(deviceId: string): Promise<mqtt.MqttClient> {
    const device = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, {
      clientId: deviceId,
      username: `${HUB}/${deviceId}/?${API}`,
      password: signDeviceSas(HUB, deviceId, keys.get(deviceId)!.primaryKey, Math.floor(Date.now() / 1000) + 600),
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
    });
    devices.push(device);
    await new Promise<void>((resolve, reject) => {
      device.once('connect', () => resolve());
      device.once('error', reject);
    });
    return device;
  }
  const subscribeTo = (device: mqtt.MqttClient, filters: string[]): Promise<void> =>
    new Promise((resolve, reject) => device.subscribe(filters, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  const answer = (device: mqtt.MqttClient, rid: string): Promise<string> =>
    new Promise((resolve) => {
      const onMessage = (topic: string): void => {
        if (!topic.includes(`$rid=${rid}`)) return;
        device.off('message', onMessage);
        resolve(topic);
      };
      device.on('message', onMessage);
    });

  it("counts a device's reported PATCH in the ack histogram, a desired write in the notification histogram, and the projector's batches", async () => {
    await client.createDevice('m1', { wait: true });
    keys.set('m1', newDeviceKeys());
    const device = await connect('m1');
    await subscribeTo(device, ['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#']);
    expect(await sample(metrics, 'twinlog_mqtt_reported_ack_seconds_count')).toBe(0);

    const acked = answer(device, 'r1');
    device.publish('$iothub/twin/PATCH/properties/reported/?$rid=r1', JSON.stringify({ temp: 21 }));
    expect(await acked).toMatch(/^\$iothub\/twin\/res\/204\//);
    await vi.waitFor(async () => expect(await sample(metrics, 'twinlog_mqtt_reported_ack_seconds_count')).toBe(1), {
      interval: 5,
    });
    expect(await sample(metrics, 'twinlog_mqtt_reported_ack_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(await sample(metrics, 'twinlog_mqtt_reported_ack_seconds_sum')).toBeGreaterThan(0);

    // GET first: the session then has a view, so the next desired version goes out live
    const got = answer(device, 'g1');
    device.publish('$iothub/twin/GET/?$rid=g1', '');
    await got;
    const notified = new Promise<void>((resolve) =>
      device.on('message', (topic) => topic.startsWith('$iothub/twin/PATCH/properties/desired/') && resolve()),
    );
    await client.mergeDesired('m1', { fw: '2.0' }, { wait: true });
    await notified;
    await vi.waitFor(async () => expect(await sample(metrics, 'twinlog_mqtt_desired_notify_seconds_count')).toBe(1), {
      interval: 5,
    });

    // create, reported and desired: three records folded and committed
    expect(await sample(metrics, 'twinlog_projector_batch_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await sample(metrics, 'twinlog_projector_commit_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await sample(metrics, 'twinlog_projector_fold_event_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await sample(metrics, 'twinlog_projector_commit_seconds_sum')).toBeGreaterThan(0);
  });
});
