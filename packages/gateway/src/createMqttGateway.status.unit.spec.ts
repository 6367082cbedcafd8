/**
 * Device status (docs/iot-hub.md, "Device status"): `PUT /devices/{id}` keeps `status` and
 * `statusReason` with the device's keys and answers them as IoT Hub does; a disabled device's
 * CONNECT is refused with CONNACK 5; a connected device that is disabled is disconnected, at once
 * through the shared key store, within `statusRecheckMs` when another process (another connection
 * to the registry file) disables it; re-enabled, it connects again. In-memory log with a real
 * projector; real sockets on 127.0.0.1.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createMqttGateway,
  MQTT_GATEWAY_CHANNEL,
  type ListeningMqttGateway,
  type MqttGateway,
  type MqttGatewayEvent,
} from './createMqttGateway.ts';
import { createRestGateway, type ListeningGateway, type RestGateway } from './createRestGateway.ts';
import { createDeviceKeyStore, withDeviceStatus, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signDeviceSas } from './internal/verifyDeviceSas.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const API = 'api-version=2021-04-12';
const OWNER_KEY = Buffer.alloc(32, 3).toString('base64');
/** A generous bound on "closed at all" (never a measured time). */
const WITHIN_MS = 5_000;

let dir: string;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let keys: DeviceKeyStore;
let rest: RestGateway;
let restServer: ListeningGateway;
let gateway: MqttGateway | undefined;
let listening: ListeningMqttGateway | undefined;
let events: MqttGatewayEvent[];
const onEvent = (e: unknown): void => void events.push(e as MqttGatewayEvent);
const devices: mqtt.MqttClient[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-status-'));
  log = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(log, 2);
  projector = await startProjector({ log, physicalNow: Date.now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: Date.now,
    actor: 'status-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 5000,
  });
  keys = createDeviceKeyStore(join(dir, 'registry.db'));
  rest = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: Date.now,
    policies: [{ name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
    deviceKeys: keys,
    isConnected: (id) => gateway?.isConnected(id) ?? false,
  });
  restServer = await rest.listen({ port: 0, host: '127.0.0.1' });
  events = [];
  subscribe(MQTT_GATEWAY_CHANNEL, onEvent);
});

afterEach(async () => {
  unsubscribe(MQTT_GATEWAY_CHANNEL, onEvent);
  for (const d of devices.splice(0)) d.end(true);
  await listening?.close();
  await gateway?.close();
  listening = undefined;
  gateway = undefined;
  await restServer.close();
  await rest.close();
  await client.close();
  await projector.stop();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

async function registry(
  method: 'GET' | 'PUT',
  deviceId: string,
  body?: object,
  ifMatch?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${restServer.port}/devices/${encodeURIComponent(deviceId)}?${API}`, {
    method,
    headers: {
      authorization: signServiceSas(HUB, 'iothubowner', OWNER_KEY, Math.floor(Date.now() / 1000) + 3600),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function startMqtt(options: { deviceKeys?: DeviceKeyStore; statusRecheckMs?: number } = {}): Promise<number> {
  gateway = createMqttGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: Date.now,
    deviceKeys: options.deviceKeys ?? keys,
    ...options,
  });
  listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
  return listening.port;
}

/** Connect as the SDKs do (no reconnects): resolves with the client, or rejects with the CONNACK error. */
function connect(port: number, deviceId: string): Promise<mqtt.MqttClient> {
  const device = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: deviceId,
    username: `${HUB}/${deviceId}/?${API}`,
    password: signDeviceSas(HUB, deviceId, keys.get(deviceId)!.primaryKey, Math.floor(Date.now() / 1000) + 600),
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: 0,
  });
  devices.push(device);
  device.on('error', () => {});
  return new Promise((resolve, reject) => {
    device.once('connect', () => resolve(device));
    device.once('error', reject);
  });
}

const closed = (device: mqtt.MqttClient): Promise<void> =>
  new Promise((resolve) => (device.connected ? device.once('close', () => resolve()) : resolve()));

describe('device status', { timeout: 20_000 }, () => {
  it('PUT /devices keeps status and statusReason with the keys and answers them, with statusUpdatedTime, as IoT Hub does', async () => {
    const created = await registry('PUT', 'dev1', { deviceId: 'dev1' });
    expect(created.status).toBe(200);
    expect(created.json).toMatchObject({
      status: 'enabled',
      statusReason: null,
      statusUpdatedTime: '0001-01-01T00:00:00Z',
    });

    const before = Date.now();
    const disabled = await registry(
      'PUT',
      'dev1',
      { deviceId: 'dev1', status: 'disabled', statusReason: 'stolen' },
      '"*"',
    );
    expect(disabled.status).toBe(200);
    expect(disabled.json).toMatchObject({ deviceId: 'dev1', status: 'disabled', statusReason: 'stolen' });
    expect(Date.parse(disabled.json['statusUpdatedTime'] as string)).toBeGreaterThanOrEqual(before - 1000);
    expect(disabled.json['etag']).not.toBe(created.json['etag']);
    // the keys are kept (the body named none), and GET answers the same
    expect(disabled.json['authentication']).toEqual(created.json['authentication']);
    expect((await registry('GET', 'dev1')).json).toMatchObject({
      status: 'disabled',
      statusReason: 'stolen',
      statusUpdatedTime: disabled.json['statusUpdatedTime'],
    });
    expect(keys.get('dev1')).toMatchObject({ status: 'disabled', statusReason: 'stolen' });

    // an update without status keeps it; the twin shows it too
    const rotated = await registry(
      'PUT',
      'dev1',
      { deviceId: 'dev1', authentication: { symmetricKey: { primaryKey: Buffer.alloc(32, 9).toString('base64') } } },
      '*',
    );
    expect(rotated.json).toMatchObject({
      status: 'disabled',
      statusReason: 'stolen',
      statusUpdatedTime: disabled.json['statusUpdatedTime'],
    });

    // a create may set the status; values are checked
    expect((await registry('PUT', 'dev2', { deviceId: 'dev2', status: 'Disabled' })).json).toMatchObject({
      status: 'disabled',
    });
    expect((await registry('PUT', 'dev1', { deviceId: 'dev1', status: 'paused' }, '*')).status).toBe(400);
    expect((await registry('PUT', 'dev1', { deviceId: 'dev1', statusReason: 7 }, '*')).status).toBe(400);
    expect((await registry('PUT', 'dev1', { deviceId: 'dev1', statusReason: 'x'.repeat(129) }, '*')).status).toBe(400);
    expect(keys.get('dev1')?.status).toBe('disabled'); // nothing changed by the refused ones

    const enabled = await registry('PUT', 'dev1', { deviceId: 'dev1', status: 'enabled', statusReason: null }, '*');
    expect(enabled.json).toMatchObject({ status: 'enabled', statusReason: null });
    expect(enabled.json['statusUpdatedTime']).not.toBe(disabled.json['statusUpdatedTime']);
  });

  it('refuses a disabled device with CONNACK 5, disconnects it when disabled while connected, and lets it back in once enabled', async () => {
    await registry('PUT', 'dev1', { deviceId: 'dev1' });
    await registry('PUT', 'other', { deviceId: 'other' });
    const port = await startMqtt({ statusRecheckMs: 60_000 }); // only the change notification can act in time
    const device = await connect(port, 'dev1');
    const bystander = await connect(port, 'other');

    const gone = closed(device);
    await registry('PUT', 'dev1', { deviceId: 'dev1', status: 'disabled' }, '*');
    await gone; // closed by the server, right after the registry answered
    expect(gateway!.isConnected('dev1')).toBe(false);
    expect(events).toContainEqual({ kind: 'disabled', deviceId: 'dev1' });
    expect((await registry('GET', 'dev1')).json['connectionState']).toBe('Disconnected');
    expect(bystander.connected).toBe(true);

    await expect(connect(port, 'dev1')).rejects.toMatchObject({ code: 5 });
    expect(events).toContainEqual(
      expect.objectContaining({ kind: 'connect', deviceId: 'dev1', returnCode: 5, reason: 'The device is disabled' }),
    );

    await registry('PUT', 'dev1', { deviceId: 'dev1', status: 'enabled' }, '*');
    const back = await connect(port, 'dev1');
    expect(back.connected).toBe(true);
    await vi.waitFor(() => expect(gateway!.isConnected('dev1')).toBe(true), { timeout: WITHIN_MS, interval: 20 }); // live once aedes has sent the CONNACK
  });

  it('closes a connection whose keys were deleted between its CONNECT and the start of its session', async () => {
    await registry('PUT', 'dev1', { deviceId: 'dev1' });
    const port = await startMqtt({ statusRecheckMs: 60_000 }); // only the session start can act in time
    // the keys go the moment the CONNECT is accepted, before aedes starts the session: the change
    // notification finds no live connection to close (a device deleted while its SDK reconnects)
    const deleteOnConnect = (e: unknown): void => {
      const event = e as MqttGatewayEvent;
      if (event.kind === 'connect' && event.deviceId === 'dev1' && event.returnCode === 0) keys.delete('dev1');
    };
    subscribe(MQTT_GATEWAY_CHANNEL, deleteOnConnect);
    try {
      const device = await connect(port, 'dev1');
      await Promise.race([
        closed(device),
        new Promise((_, reject) => setTimeout(() => reject(new Error('still connected')), WITHIN_MS)),
      ]);
    } finally {
      unsubscribe(MQTT_GATEWAY_CHANNEL, deleteOnConnect);
    }
    expect(gateway!.isConnected('dev1')).toBe(false);
  });

  it('disconnects a device disabled by another process on the same registry file within the recheck interval', async () => {
    await registry('PUT', 'dev1', { deviceId: 'dev1' });
    await registry('PUT', 'dev2', { deviceId: 'dev2' });
    const port = await startMqtt({ statusRecheckMs: 100 });
    const dev1 = await connect(port, 'dev1');
    const dev2 = await connect(port, 'dev2');
    const cli = createDeviceKeyStore(join(dir, 'registry.db')); // as `twinlog device update` would
    const gone = closed(dev1);
    cli.set('dev1', withDeviceStatus(cli.get('dev1')!, { status: 'disabled' }, Date.now()));
    await vi.waitFor(() => expect(gateway!.isConnected('dev1')).toBe(false), { timeout: WITHIN_MS, interval: 20 });
    await gone;
    expect(dev2.connected).toBe(true);
    await expect(connect(port, 'dev1')).rejects.toMatchObject({ code: 5 });

    cli.set('dev1', withDeviceStatus(cli.get('dev1')!, { status: 'enabled' }, Date.now()));
    expect((await connect(port, 'dev1')).connected).toBe(true);
    await new Promise((r) => setTimeout(r, 300)); // a few rechecks: an enabled device stays
    expect(gateway!.isConnected('dev1')).toBe(true);
    expect(dev2.connected).toBe(true);
  });

  it('rechecks a store without change notifications by reading each connected device', async () => {
    await registry('PUT', 'dev1', { deviceId: 'dev1' });
    const plain: DeviceKeyStore = {
      get: (id) => keys.get(id),
      set: (id, k) => keys.set(id, k),
      delete: (id) => keys.delete(id),
    };
    const port = await startMqtt({ deviceKeys: plain, statusRecheckMs: 100 });
    const dev1 = await connect(port, 'dev1');
    const gone = closed(dev1);
    keys.set('dev1', withDeviceStatus(keys.get('dev1')!, { status: 'disabled' }, Date.now()));
    await gone;
    expect(gateway!.isConnected('dev1')).toBe(false);
  });
});
