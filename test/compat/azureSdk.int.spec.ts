/**
 * Compatibility suite (issue #4, acceptance 6): the unmodified `azure-iot-device` +
 * `azure-iot-device-mqtt` (device, MQTT over TLS) and `azure-iothub` `Registry` (service, HTTPS)
 * against twinlog's gateways, with a CA created by the test, on the embedded backend and on Kafka.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { promisify } from 'node:util';
import { MQTT_GATEWAY_CHANNEL, type MqttGatewayEvent } from '@twinlog/gateway';
import type { Client as DeviceClient, Twin } from 'azure-iot-device';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackendKind } from './support/backends.ts';
import { eventually, startHub, type Hub } from './support/compatHarness.ts';

type Desired = Record<string, unknown>;

/** The device's view of desired without `$`-keys. */
function plain(desired: Desired): Desired {
  return Object.fromEntries(Object.entries(desired).filter(([k]) => !k.startsWith('$')));
}

async function createDevice(hub: Hub, deviceId: string): Promise<string> {
  const { responseBody } = await hub.registry.create({ deviceId });
  const key = responseBody.authentication?.symmetricKey?.primaryKey;
  if (typeof key !== 'string') throw new Error('no key');
  return key;
}

/**
 * Open a device, get its twin and record every desired patch it is sent. Copies: the SDK calls a
 * new `properties.desired` listener at once with its live `twin.properties.desired` (the GET's
 * view), and merges later notifications into that same object, so a kept reference would later
 * look like a second patch with the newest `$version`.
 */
async function openDevice(
  hub: Hub,
  deviceId: string,
  key: string,
  modelId?: string,
): Promise<{ client: DeviceClient; twin: Twin; patches: Desired[] }> {
  const client = await hub.device(deviceId, key, modelId);
  await client.open();
  const twin = await client.getTwin();
  const patches: Desired[] = [];
  twin.on('properties.desired', (patch: Desired) => patches.push(structuredClone(patch)));
  return { client, twin, patches };
}

/** IoT Hub's twin carries `connectionState`; the SDK's `Twin` type does not declare it. */
const connectionStateOf = (twin: object): unknown => (twin as { connectionState?: unknown }).connectionState;

function compat(kind: BackendKind): void {
  describe(`the Azure IoT SDKs on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind);
    });
    afterEach(async () => {
      await hub.close();
    });

    it('device: gets its twin, reports, receives desired updates; service: getTwin, updateTwin with etag and a stale one', async () => {
      const key = await createDevice(hub, 'dev1');
      const { client, twin, patches } = await openDevice(hub, 'dev1', key, 'dtmi:com:example:Thermostat;1');
      // a fresh twin (docs/iot-hub.md "The twin document"): both $versions 1, no $metadata over MQTT, no tags
      expect(twin.properties.desired['$version']).toBe(1);
      expect(twin.properties.reported['$version']).toBe(1);
      expect(twin.properties.desired['$metadata']).toBeUndefined();
      expect((twin as unknown as Record<string, unknown>)['tags']).toBeUndefined();

      const reported = twin.properties.reported as unknown as {
        update(patch: object, done: (e?: Error) => void): void;
      };
      const report = promisify((patch: object, done: (e?: Error) => void) => reported.update(patch, done)); // twin.properties.reported.update
      await report({ temp: 21, fw: { value: '1.0' } });
      // the writer reads its own write: the 204 came after the projector applied it
      const { responseBody: afterReport } = await hub.registry.getTwin('dev1');
      expect(afterReport.properties.reported['temp']).toBe(21);
      expect(afterReport.properties.reported['$version']).toBe(2);
      expect(connectionStateOf(afterReport)).toBe('Connected'); // the device is connected over MQTT
      expect(afterReport.modelId).toBe('dtmi:com:example:Thermostat;1'); // announced at connect (Plug and Play)

      const etag = afterReport.etag;
      const { responseBody: updated } = await hub.registry.updateTwin(
        'dev1',
        { tags: { site: 'b' }, properties: { desired: { fw: '1.2' } } },
        etag,
      );
      expect(updated.properties.desired['fw']).toBe('1.2');
      await eventually(() => (twin.properties.desired['fw'] === '1.2' ? true : undefined), 'the desired notification');
      const notified = patches.find((p) => p['fw'] === '1.2');
      expect(notified).toMatchObject({ fw: '1.2', $version: 2 });
      expect(JSON.stringify(patches)).not.toContain('site'); // tags never reach the device

      await expect(
        hub.registry.updateTwin('dev1', { properties: { desired: { fw: '9' } } }, etag),
      ).rejects.toMatchObject({ name: 'InvalidEtagError' });
      // a device report between a read and a conditional write causes no 412 (docs/iot-hub.md "The twin document": a report never changes the etag)
      await report({ temp: 22 });
      const { responseBody: after } = await hub.registry.updateTwin(
        'dev1',
        { properties: { desired: { mode: 'eco' } } },
        updated.etag,
      );
      expect(after.properties.desired['mode']).toBe('eco');
      await eventually(() => (twin.properties.desired['mode'] === 'eco' ? true : undefined), 'the second notification');
      expect(plain(twin.properties.desired)).toEqual(plain(after.properties.desired));

      await client.close();
      await eventually(
        async () =>
          connectionStateOf((await hub.registry.getTwin('dev1')).responseBody) === 'Disconnected' ? true : undefined,
        'connectionState Disconnected',
      );
    });

    it('service: replaceTwin, and a paged query', async () => {
      const key1 = await createDevice(hub, 'dev1');
      await createDevice(hub, 'dev2');
      await createDevice(hub, 'dev3');
      const { twin, patches } = await openDevice(hub, 'dev1', key1);
      const { responseBody: t1 } = await hub.registry.getTwin('dev1');
      const { responseBody: patched } = await hub.registry.updateTwin(
        'dev1',
        { tags: { a: 1 }, properties: { desired: { x: 1, y: 2 } } },
        t1.etag,
      );
      await eventually(() => (twin.properties.desired['y'] === 2 ? true : undefined), 'x and y');

      const replaced = await hub.replaceTwin(
        'dev1',
        { tags: { b: 2 }, properties: { desired: { z: 3 } } },
        patched.etag,
      );
      expect(replaced['tags'] as object).toEqual({ b: 2 });
      // the device gets the difference, removed keys as null (docs/iot-hub.md "Writes"), and its copy matches
      await eventually(() => (twin.properties.desired['z'] === 3 ? true : undefined), 'the replace notification');
      // (the SDK strips the nulls from the patch it emits once merged: its copy shows the removal)
      expect(patches.find((p) => p['z'] === 3)).toMatchObject({ z: 3, $version: 3 });
      expect(plain(twin.properties.desired)).toEqual({ z: 3 });
      await expect(hub.replaceTwin('dev1', { tags: {} }, patched.etag)).rejects.toMatchObject({
        name: 'InvalidEtagError',
      });

      const query = hub.registry.createQuery("SELECT * FROM devices WHERE deviceId != 'nobody'", 2);
      const pages: string[][] = [];
      while (query.hasMoreResults) {
        const page = await query.nextAsTwin();
        pages.push(page.result.map((t) => t.deviceId));
      }
      expect(pages).toEqual([['dev1', 'dev2'], ['dev3']]);
    });

    it('a device that was offline while desired changed several times catches up with one notification, without GET or SUBSCRIBE', async () => {
      const key = await createDevice(hub, 'dev1');
      const { twin, patches } = await openDevice(hub, 'dev1', key);
      const { responseBody: t1 } = await hub.registry.updateTwin(
        'dev1',
        { properties: { desired: { fw: '1.0', keep: true } } },
        '*',
      );
      await eventually(() => (twin.properties.desired['fw'] === '1.0' ? true : undefined), 'the first notification');
      // the device goes offline: the server drops it and does not accept it back for a while
      await hub.stopMqtt();
      const before = patches.length;
      let etag = t1.etag;
      for (const desired of [
        { fw: '1.1' },
        { fw: '1.2', mode: 'eco' },
        { keep: null },
        { fw: '1.3', nested: { a: 1 } },
      ]) {
        etag = (await hub.registry.updateTwin('dev1', { properties: { desired } }, etag)).responseBody.etag;
      }
      const { responseBody: service } = await hub.registry.getTwin('dev1');
      expect(service.properties.desired['$version']).toBe(6);

      // same process, same session store: the SDK reconnects on its own (no re-SUBSCRIBE, no re-GET)
      await hub.startMqtt();
      await eventually(() => (patches.length > before ? true : undefined), 'the catch-up notification');
      const missed = patches.slice(before);
      // one notification with everything and the latest $version; `keep: null` is merged (and stripped) by the SDK
      expect(missed[0]).toMatchObject({ fw: '1.3', mode: 'eco', nested: { a: 1 }, $version: 6 });
      expect(plain(twin.properties.desired)).toEqual({ fw: '1.3', mode: 'eco', nested: { a: 1 } });
      expect(plain(twin.properties.desired)).toEqual(plain(service.properties.desired));
    });

    it('CleanSession=0 subscriptions survive a gateway restart: a new gateway process state delivers desired changes to the reconnected device', async () => {
      const key = await createDevice(hub, 'dev1');
      const { client, twin, patches } = await openDevice(hub, 'dev1', key);
      await hub.registry.updateTwin('dev1', { properties: { desired: { a: 1 } } }, '*');
      await eventually(() => (twin.properties.desired['a'] === 1 ? true : undefined), 'a=1');
      let reconnected: boolean;
      client.on('disconnect', () => {
        reconnected = false;
      });

      await hub.stopMqtt(); // everything in memory is gone with this gateway
      await hub.startMqtt(); // new gateway: the session file only
      // the SDK reconnects by itself and never subscribes again (docs/iot-hub.md "MQTT (devices)"); wait until it is back
      await eventually(() => (hub.mqtt.connectedDevices().includes('dev1') ? true : undefined), 'the reconnect');
      reconnected = true;
      const before = patches.length;
      await hub.registry.updateTwin('dev1', { properties: { desired: { a: 2 } } }, '*');
      await eventually(() => (twin.properties.desired['a'] === 2 ? true : undefined), 'a=2 after the restart');
      expect(reconnected).toBe(true);
      expect(patches.slice(before)[0]).toMatchObject({ a: 2, $version: 3 });
    });

    it('each desired $version reaches the device once, when the write lands just after the SDK subscribes (3 devices)', async () => {
      const sent: number[] = [];
      const onEvent = (e: unknown): void => {
        const event = e as MqttGatewayEvent;
        if (event.kind === 'notify') sent.push(event.version);
      };
      subscribe(MQTT_GATEWAY_CHANNEL, onEvent);
      try {
        for (const deviceId of ['race1', 'race2', 'race3']) {
          sent.length = 0;
          const client = await hub.device(deviceId, await createDevice(hub, deviceId));
          await client.open();
          const twin = await client.getTwin();
          const patches: Desired[] = [];
          twin.on('properties.desired', (patch: Desired) => patches.push(structuredClone(patch))); // SUBSCRIBE goes out now
          await hub.registry.updateTwin(deviceId, { properties: { desired: { fw: deviceId } } }, '*');
          await eventually(
            () => (twin.properties.desired['fw'] === deviceId ? true : undefined),
            `${deviceId}'s notification`,
          );
          await hub.registry.updateTwin(deviceId, { properties: { desired: { mode: 'eco' } } }, '*');
          await eventually(
            () => (twin.properties.desired['mode'] === 'eco' ? true : undefined),
            `${deviceId}'s second notification`,
          );
          await new Promise((r) => setTimeout(r, 100)); // room for a duplicate to show up
          expect(sent).toEqual([2, 3]); // on the wire: once each, in order
          // the listener: the SDK's own replay of the GET's view, then one call per notification
          expect(patches).toEqual([{ $version: 1 }, { fw: deviceId, $version: 2 }, { mode: 'eco', $version: 3 }]);
          await client.close();
        }
      } finally {
        unsubscribe(MQTT_GATEWAY_CHANNEL, onEvent);
      }
    });
  });
}

compat('embedded');
compat('kafka');
