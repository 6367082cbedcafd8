/**
 * A device's MQTT GET from an index (docs/reads.md): with the fleet read model as `twinIndex`, a
 * GET right after the device's own acknowledged reported PATCH reflects it, even when the index's
 * view only moves when the gateway waits for a position (so a GET that did not wait would be stale).
 */
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { createReadModel, type ReadModel } from '@twinlog/fleet';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { parseQuery } from '@twinlog/query';
import mqtt from 'mqtt';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createMqttGateway, type ListeningMqttGateway, type MqttGateway } from './createMqttGateway.ts';
import { createDeviceKeyStore, newDeviceKeys, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import type { TwinIndex } from './internal/twinReader.ts';
import { signDeviceSas } from './internal/verifyDeviceSas.ts';

const HUB = 'localhost';
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let readModel: ReadModel;
let keys: DeviceKeyStore;
let gateway: MqttGateway;
let listening: ListeningMqttGateway;

beforeEach(async () => {
  log = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(log, 2);
  projector = await startProjector({ log, physicalNow: Date.now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: Date.now,
    actor: 'index-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 5000,
  });
  readModel = await createReadModel({ log, path: ':memory:' });
  keys = createDeviceKeyStore();
});

afterEach(async () => {
  await listening.close();
  await gateway.close();
  await readModel.close();
  await client.close();
  await projector.stop();
  await log.close();
});

it('a GET after the device’s own reported PATCH reflects it', async () => {
  const view = new Map<string, Record<string, unknown>>();
  const refresh = (): void => {
    view.clear();
    for (const row of readModel.store.run(parseQuery('SELECT * FROM devices'), { all: true }).rows)
      view.set(row['deviceId'] as string, row);
  };
  let waits = 0;
  const index: TwinIndex = {
    getTwin: (id) => view.get(id),
    waitFor: async (target, options) => {
      waits++;
      await readModel.waitFor(target, options);
      refresh();
    },
    onUpdate: (l) => readModel.onUpdate(l),
  };
  await readModel.waitFor(await client.createDevice('dev1'));
  refresh();
  keys.set('dev1', newDeviceKeys());
  gateway = createMqttGateway({ log, client, hubName: HUB, physicalNow: Date.now, deviceKeys: keys, twinIndex: index });
  listening = await gateway.listen({ port: 0, host: '127.0.0.1' });

  const device = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, {
    clientId: 'dev1',
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    username: `${HUB}/dev1/?api-version=2021-04-12`,
    password: signDeviceSas(HUB, 'dev1', keys.get('dev1')!.primaryKey, Math.floor(Date.now() / 1000) + 3600),
  });
  await new Promise<void>((resolve, reject) => {
    device.once('connect', () => resolve());
    device.once('error', reject);
  });
  try {
    const responses: { topic: string; body: string }[] = [];
    const arrived: (() => void)[] = [];
    device.on('message', (topic, payload) => {
      responses.push({ topic, body: payload.toString() });
      arrived.shift()?.();
    });
    const response = async (rid: number): Promise<{ topic: string; body: string }> => {
      for (;;) {
        const found = responses.find((r) => r.topic.endsWith(`?$rid=${rid}`) || r.topic.includes(`?$rid=${rid}&`));
        if (found !== undefined) return found;
        await new Promise<void>((resolve) => arrived.push(resolve));
      }
    };
    await new Promise<void>((resolve, reject) =>
      device.subscribe('$iothub/twin/res/#', (e) => (e ? reject(e) : resolve())),
    );

    device.publish('$iothub/twin/GET/?$rid=1', '');
    const first = await response(1);
    expect(first.topic).toMatch(/^\$iothub\/twin\/res\/200\//);
    expect(waits).toBe(0); // nothing written by this gateway yet: one lookup

    for (let i = 0; i < 3; i++) {
      device.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${10 + i}`, JSON.stringify({ battery: 90 - i }));
      expect((await response(10 + i)).topic).toMatch(/^\$iothub\/twin\/res\/204\//);
      device.publish(`$iothub/twin/GET/?$rid=${20 + i}`, '');
      const got = await response(20 + i);
      expect(got.topic).toMatch(/^\$iothub\/twin\/res\/200\//);
      expect(JSON.parse(got.body)).toMatchObject({ reported: { battery: 90 - i, $version: 2 + i } });
    }
    expect(waits).toBeGreaterThan(0);
  } finally {
    await new Promise<void>((resolve) => device.end(true, {}, () => resolve()));
  }
});
