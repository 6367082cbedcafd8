/**
 * Compatibility suite (issue #14, acceptance 3 and 6): module identities and module twins with the
 * unmodified `azure-iothub` `Registry` (`addModule`, `getModule`, `getModulesOnDevice`,
 * `updateModule`, `getModuleTwin`, `updateModuleTwin`, `removeModule`) against twinlog's REST
 * gateway, and the unmodified `ModuleClient` of `azure-iot-device` over MQTT (client id
 * `{deviceId}/{moduleId}`) against its MQTT gateway (docs/iot-hub.md, "Module identities and module
 * twins"), on the embedded backend and on Kafka.
 */
import { promisify } from 'node:util';
import { ModuleClient, type Twin } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createReadModel, type ReadModel } from '@twinlog/fleet';
import { createRestGateway, signServiceSas, type ListeningGateway, type RestGateway } from '@twinlog/gateway';
import { startBackend, type Backend, type BackendKind } from './support/backends.ts';
import { eventually, OWNER_KEY, startHub, type Hub } from './support/compatHarness.ts';

type Desired = Record<string, unknown>;

/** A desired section without its `$`-keys. */
const plain = (desired: Desired): Desired =>
  Object.fromEntries(Object.entries(desired).filter(([k]) => !k.startsWith('$')));

function compat(kind: BackendKind): void {
  describe(`module identities and module twins with the Registry on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind);
    });
    afterEach(async () => {
      await hub.close();
    });

    it('addModule, getModule, getModulesOnDevice, updateModule, getModuleTwin, updateModuleTwin, removeModule', async () => {
      await hub.registry.create({ deviceId: 'gw-1' });
      // the parent must exist
      await expect(hub.registry.addModule({ deviceId: 'nodev', moduleId: 'm1' })).rejects.toMatchObject({
        name: 'DeviceNotFoundError',
      });

      const { responseBody: added } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      expect(added).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', connectionState: 'Disconnected' });
      expect(added.authentication?.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);
      await expect(hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' })).rejects.toMatchObject({
        name: 'DeviceAlreadyExistsError',
      });
      await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'camera' });

      const { responseBody: got } = await hub.registry.getModule('gw-1', 'sensor');
      expect(got).toEqual(added);
      const { responseBody: list } = await hub.registry.getModulesOnDevice('gw-1');
      expect(list.map((m) => m.moduleId)).toEqual(['camera', 'sensor']);

      const { responseBody: updated } = await hub.registry.updateModule({ ...got, status: 'disabled' } as typeof got);
      expect(hub.keys.get('gw-1/sensor')?.status).toBe('disabled');
      expect(updated.etag).not.toBe(got.etag);

      // the module twin: its own document, etags as for device twins
      const { responseBody: twin } = await hub.registry.getModuleTwin('gw-1', 'sensor');
      expect(twin).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor' });
      expect(twin.properties.desired['$version']).toBe(1);
      const { responseBody: patched } = await hub.registry.updateModuleTwin(
        'gw-1',
        'sensor',
        { tags: { site: 'north' }, properties: { desired: { rate: 5 } } },
        twin.etag,
      );
      expect(patched).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', tags: { site: 'north' } });
      expect(patched.properties.desired['rate']).toBe(5);
      await expect(
        hub.registry.updateModuleTwin('gw-1', 'sensor', { tags: { site: 'south' } }, twin.etag),
      ).rejects.toMatchObject({ name: 'InvalidEtagError' });
      const { responseBody: deviceTwin } = await hub.registry.getTwin('gw-1');
      expect(deviceTwin.tags).toEqual({});
      expect((deviceTwin as unknown as Record<string, unknown>)['moduleId']).toBeUndefined();

      // queries: devices answers device twins only, devices.modules module twins
      const devices = await hub.registry.createQuery('SELECT * FROM devices').nextAsTwin();
      expect(devices.result.map((t) => t.deviceId)).toEqual(['gw-1']);
      const modules = await hub.registry.createQuery("SELECT * FROM devices.modules WHERE tags.site = 'north'").next();
      expect((modules.result as { moduleId: string }[]).map((t) => t.moduleId)).toEqual(['sensor']);

      await hub.registry.removeModule('gw-1', 'camera');
      await expect(hub.registry.getModule('gw-1', 'camera')).rejects.toMatchObject({ response: { statusCode: 404 } });
      await expect(hub.registry.getModuleTwin('gw-1', 'camera')).rejects.toMatchObject({
        response: { statusCode: 404 },
      });
      expect((await hub.registry.getModulesOnDevice('gw-1')).responseBody.map((m) => m.moduleId)).toEqual(['sensor']);

      // deleting the device deletes its modules
      await hub.registry.delete('gw-1');
      await expect(hub.registry.getModuleTwin('gw-1', 'sensor')).rejects.toMatchObject({
        response: { statusCode: 404 },
      });
      expect(hub.keys.get('gw-1/sensor')).toBeUndefined();
    });
  });

  describe(`ModuleClient over MQTT on the ${kind} backend`, () => {
    let hub: Hub;
    const clients: ModuleClient[] = [];
    beforeEach(async () => {
      hub = await startHub(kind);
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) await c.close().catch(() => {});
      await hub.close();
    });

    /** An unmodified ModuleClient with a module connection string (client id {deviceId}/{moduleId}), trusting the test CA. */
    async function openModule(
      deviceId: string,
      moduleId: string,
      key: string,
    ): Promise<{ client: ModuleClient; twin: Twin; patches: Desired[] }> {
      const client = ModuleClient.fromConnectionString(
        `HostName=localhost:${hub.mqttPort};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`,
        Mqtt,
      );
      await client.setOptions({ ca: hub.ca.ca });
      clients.push(client);
      await client.open();
      const twin = await client.getTwin();
      const patches: Desired[] = [];
      twin.on('properties.desired', (patch: Desired) => patches.push(structuredClone(patch)));
      return { client, twin, patches };
    }
    const keyOf = (m: { authentication?: { symmetricKey?: { primaryKey?: string | null } } }): string =>
      m.authentication!.symmetricKey!.primaryKey!;

    it("gets its module twin, reports, receives desired notifications, never sees its device's or another module's twin", async () => {
      const { responseBody: device } = await hub.registry.create({ deviceId: 'gw-1' });
      const { responseBody: sensor } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      const { responseBody: camera } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'camera' });
      await hub.registry.updateTwin('gw-1', { properties: { desired: { deviceOnly: 1 } } }, '*');
      await hub.registry.updateModuleTwin('gw-1', 'camera', { properties: { desired: { cameraOnly: 1 } } }, '*');

      const s = await openModule('gw-1', 'sensor', keyOf(sensor));
      expect(plain(s.twin.properties.desired)).toEqual({});
      expect(s.twin.properties.desired['$version']).toBe(1);
      const c = await openModule('gw-1', 'camera', keyOf(camera));
      expect(plain(c.twin.properties.desired)).toEqual({ cameraOnly: 1 });
      const deviceClient = await hub.device('gw-1', keyOf(device));
      await deviceClient.open();
      const deviceTwin = await deviceClient.getTwin();
      deviceTwin.on('properties.desired', () => {}); // the SDK subscribes to desired notifications with the first listener
      expect(plain(deviceTwin.properties.desired)).toEqual({ deviceOnly: 1 });
      expect(hub.mqtt.isConnected('gw-1/sensor')).toBe(true);
      expect((await hub.registry.getModule('gw-1', 'sensor')).responseBody.connectionState).toBe('Connected');
      expect((await hub.registry.getModule('gw-1', 'camera')).responseBody.connectionState).toBe('Connected');

      // reported: lands on the module twin only
      const reported = s.twin.properties.reported as unknown as {
        update(patch: object, done: (e?: Error) => void): void;
      };
      await promisify((patch: object, done: (e?: Error) => void) => reported.update(patch, done))({ temperature: 21 });
      const { responseBody: sensorTwin } = await hub.registry.getModuleTwin('gw-1', 'sensor');
      expect(sensorTwin.properties.reported['temperature']).toBe(21);
      expect((await hub.registry.getTwin('gw-1')).responseBody.properties.reported['temperature']).toBeUndefined();
      expect(
        (await hub.registry.getModuleTwin('gw-1', 'camera')).responseBody.properties.reported['temperature'],
      ).toBeUndefined();

      // desired: only the module written is notified
      await hub.registry.updateModuleTwin('gw-1', 'sensor', { properties: { desired: { rate: 5 } } }, sensorTwin.etag);
      await eventually(
        () => (s.patches.some((p) => p['rate'] === 5) ? true : undefined),
        'the module desired notification',
      );
      expect(s.patches.find((p) => p['rate'] === 5)).toMatchObject({ rate: 5, $version: 2 });
      await hub.registry.updateTwin('gw-1', { properties: { desired: { deviceOnly: 2 } } }, '*');
      await eventually(
        () => (deviceTwin.properties.desired['deviceOnly'] === 2 ? true : undefined),
        'the device notification',
      );
      expect(s.patches.some((p) => 'deviceOnly' in p || 'cameraOnly' in p)).toBe(false);
      expect(c.patches.some((p) => 'rate' in p || 'deviceOnly' in p)).toBe(false);

      // deleting the device deletes its modules: their connections are closed
      await hub.registry.delete('gw-1');
      await eventually(
        () => (hub.mqtt.isConnected('gw-1/sensor') || hub.mqtt.isConnected('gw-1/camera') ? undefined : true),
        'the modules disconnected',
      );
    });

    it('offline catch-up: a module that missed desired changes gets one notification when it is back', async () => {
      await hub.registry.create({ deviceId: 'gw-1' });
      const { responseBody: sensor } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      const s = await openModule('gw-1', 'sensor', keyOf(sensor));
      let etag = (
        await hub.registry.updateModuleTwin(
          'gw-1',
          'sensor',
          { properties: { desired: { fw: '1.0', keep: true } } },
          '*',
        )
      ).responseBody.etag;
      await eventually(() => (s.twin.properties.desired['fw'] === '1.0' ? true : undefined), 'the first notification');
      await hub.stopMqtt();
      const before = s.patches.length;
      for (const desired of [{ fw: '1.1' }, { keep: null }, { fw: '1.2', mode: 'eco' }]) {
        etag = (await hub.registry.updateModuleTwin('gw-1', 'sensor', { properties: { desired } }, etag)).responseBody
          .etag;
      }
      await hub.startMqtt(); // the SDK reconnects on its own (no re-SUBSCRIBE, no re-GET)
      await eventually(() => (s.patches.length > before ? true : undefined), 'the catch-up notification');
      expect(s.patches[before]).toMatchObject({ fw: '1.2', mode: 'eco', $version: 5 });
      expect(plain(s.twin.properties.desired)).toEqual({ fw: '1.2', mode: 'eco' });
    });

    it("a disabled module gets CONNACK 5 (UnauthorizedError) and its open connection is closed; another module's key is refused", async () => {
      await hub.registry.create({ deviceId: 'gw-1' });
      const { responseBody: sensor } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      const { responseBody: camera } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'camera' });
      const wrong = ModuleClient.fromConnectionString(
        `HostName=localhost:${hub.mqttPort};DeviceId=gw-1;ModuleId=sensor;SharedAccessKey=${keyOf(camera)}`,
        Mqtt,
      );
      await wrong.setOptions({ ca: hub.ca.ca });
      clients.push(wrong);
      await expect(wrong.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });

      await openModule('gw-1', 'sensor', keyOf(sensor));
      expect(hub.mqtt.isConnected('gw-1/sensor')).toBe(true);
      const { responseBody: current } = await hub.registry.getModule('gw-1', 'sensor');
      await hub.registry.updateModule({ ...current, status: 'disabled' } as typeof current);
      await eventually(() => (hub.mqtt.isConnected('gw-1/sensor') ? undefined : true), 'the disabled module dropped');
      const again = ModuleClient.fromConnectionString(
        `HostName=localhost:${hub.mqttPort};DeviceId=gw-1;ModuleId=sensor;SharedAccessKey=${keyOf(sensor)}`,
        Mqtt,
      );
      await again.setOptions({ ca: hub.ca.ca });
      clients.push(again);
      await expect(again.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });
    });
  });

  describe(`module twins in the read model's queries on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind, { jobs: true }); // queries answered by the read model, as in twinlog serve
    });
    afterEach(async () => {
      await hub.close();
    });

    it('SELECT * FROM devices answers device twins only, FROM devices.modules module twins (WHERE on them)', async () => {
      await hub.registry.create({ deviceId: 'gw-1' });
      await hub.registry.create({ deviceId: 'gw-2' });
      await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      await hub.registry.addModule({ deviceId: 'gw-2', moduleId: 'sensor' });
      const { responseBody: twin } = await hub.registry.getModuleTwin('gw-1', 'sensor');
      await hub.registry.updateModuleTwin('gw-1', 'sensor', { tags: { site: 'north' } }, twin.etag);
      const rows = (q: string) => async () =>
        ((await hub.registry.createQuery(q).next()).result as { deviceId: string; moduleId?: string }[]).map((t) =>
          t.moduleId === undefined ? t.deviceId : `${t.deviceId}/${t.moduleId}`,
        );
      const settled = (q: string, want: string[]) =>
        eventually(async () => (JSON.stringify(await rows(q)()) === JSON.stringify(want) ? true : undefined), q);
      await settled("SELECT * FROM devices.modules WHERE tags.site = 'north'", ['gw-1/sensor']);
      await settled('SELECT * FROM devices.modules', ['gw-1/sensor', 'gw-2/sensor']);
      await settled("SELECT deviceId, moduleId FROM devices.modules WHERE deviceId = 'gw-2'", ['gw-2/sensor']);
      expect(await rows('SELECT * FROM devices')()).toEqual(['gw-1', 'gw-2']);
      const count = await hub.registry.createQuery('SELECT COUNT() AS n FROM devices').next();
      expect(count.result).toEqual([{ n: 2 }]);
    });
  });
}

/**
 * The REST gateway as `twinlog serve` builds it: the read model as both the query view and the twin
 * index, so module twins are read from it (read-your-writes after a PATCH) and queried in it.
 */
describe('module twins through the read model as twin index and query view (as in twinlog serve)', () => {
  let backend: Backend;
  let readModel: ReadModel;
  let gateway: RestGateway;
  let server: ListeningGateway;
  beforeEach(async () => {
    backend = await startBackend('embedded');
    readModel = await createReadModel({ log: backend.log, path: join(backend.dir, 'read-model.db') });
    gateway = createRestGateway({
      log: backend.log,
      hubName: 'localhost',
      physicalNow: Date.now,
      policies: [{ name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
      queryView: readModel,
      twinIndex: readModel,
    });
    server = await gateway.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(async () => {
    await server.close();
    await gateway.close();
    await readModel.close();
    await backend.stop();
  });

  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: any }> => {
    const auth = signServiceSas('localhost', 'iothubowner', OWNER_KEY, Math.floor(Date.now() / 1000) + 600);
    const res = await fetch(`http://127.0.0.1:${server.port}${path}?api-version=2021-04-12`, {
      method,
      headers: {
        authorization: auth,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
  };

  it('creates, reads its own writes and queries module twins', async () => {
    expect((await call('PUT', '/devices/gw-1', { deviceId: 'gw-1' })).status).toBe(200);
    expect((await call('PUT', '/devices/gw-1/modules/sensor', {})).status).toBe(200);
    const t = await call('GET', '/twins/gw-1/modules/sensor');
    expect(t.json).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', version: 2 });
    const p = await call(
      'PATCH',
      '/twins/gw-1/modules/sensor',
      { tags: { site: 'north' } },
      { 'if-match': `"${t.json.etag}"` },
    );
    expect(p.json).toMatchObject({ moduleId: 'sensor', tags: { site: 'north' } });
    expect((await call('GET', '/twins/gw-1/modules/sensor')).json.tags).toEqual({ site: 'north' });
    expect((await call('GET', '/twins/gw-1')).json.tags).toEqual({});
    const rows = async (query: string) =>
      (await call('POST', '/devices/query', { query })).json as { deviceId: string; moduleId?: string }[];
    await eventually(
      async () =>
        (await rows("SELECT * FROM devices.modules WHERE tags.site = 'north'")).length === 1 ? true : undefined,
      'the module in the read model',
    );
    expect((await rows('SELECT * FROM devices.modules'))[0]).toMatchObject({
      deviceId: 'gw-1',
      moduleId: 'sensor',
      tags: { site: 'north' },
    });
    expect((await rows('SELECT * FROM devices')).map((r) => r.deviceId)).toEqual(['gw-1']);
    expect((await call('DELETE', '/devices/gw-1')).status).toBe(204);
    expect((await call('GET', '/twins/gw-1/modules/sensor')).status).toBe(404);
  });
});

compat('embedded');
compat('kafka');
