/**
 * Device status with the unmodified SDKs (issue #14, item 5; docs/iot-hub.md, "Device status"):
 * `Registry.update` of `azure-iothub` disabling a device connected with `azure-iot-device` +
 * `azure-iot-device-mqtt` drops its connection (the SDK's reconnects get CONNACK 5), and an
 * `open()` then fails with the SDK's `UnauthorizedError`; re-enabled, `open()` works. On the
 * embedded backend and on Kafka.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { MQTT_GATEWAY_CHANNEL, type MqttGatewayEvent } from '@twinlog/gateway';
import type { Client as DeviceClient } from 'azure-iot-device';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackendKind } from './support/backends.ts';
import { eventually, startHub, type Hub } from './support/compatHarness.ts';

async function createDevice(hub: Hub, deviceId: string): Promise<string> {
  const { responseBody } = await hub.registry.create({ deviceId });
  const key = responseBody.authentication?.symmetricKey?.primaryKey;
  if (typeof key !== 'string') throw new Error('no key');
  return key;
}

/** The SDK's Device type lacks IoT Hub's `statusUpdatedTime`. */
const statusUpdatedTimeOf = (device: object): unknown => (device as { statusUpdatedTime?: unknown }).statusUpdatedTime;

function deviceStatus(kind: BackendKind): void {
  describe(`device status with the Azure IoT SDKs on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind);
    });
    afterEach(async () => {
      await hub.close();
    });

    it('Registry.update disabling a connected device drops its connection and open() fails unauthorized; re-enabled, open() works', async () => {
      const key = await createDevice(hub, 'dev1');
      const otherKey = await createDevice(hub, 'dev2');
      const client: DeviceClient = await hub.device('dev1', key);
      await client.open();
      // a device listening for desired updates, as devices do: after a drop the SDK reconnects to
      // re-enable them (its retry policy: a refused reconnect is retried, not reported)
      const twin = await client.getTwin();
      twin.on('properties.desired', () => {});
      const other: DeviceClient = await hub.device('dev2', otherKey);
      await other.open();
      expect(hub.mqtt.isConnected('dev1')).toBe(true);
      const refusals: number[] = [];
      const onEvent = (m: unknown): void => {
        const e = m as MqttGatewayEvent;
        if (e.kind === 'connect' && e.deviceId === 'dev1' && e.returnCode !== 0) refusals.push(e.returnCode);
      };
      subscribe(MQTT_GATEWAY_CHANNEL, onEvent);
      try {
        const { responseBody: disabled } = await hub.registry.update({
          deviceId: 'dev1',
          status: 'disabled',
          statusReason: 'stolen',
        });
        expect(disabled).toMatchObject({ deviceId: 'dev1', status: 'disabled', statusReason: 'stolen' });
        expect(statusUpdatedTimeOf(disabled)).not.toBe('0001-01-01T00:00:00Z');
        expect(disabled.authentication?.symmetricKey?.primaryKey).toBe(key); // the keys stay

        // the gateway closes the connection at once; the SDK's reconnects get CONNACK 5
        await eventually(() => (hub.mqtt.isConnected('dev1') ? undefined : true), 'dev1 disconnected');
        await eventually(() => (refusals.length > 0 ? true : undefined), "the SDK's reconnect refused");
        expect(new Set(refusals)).toEqual(new Set([5]));
        expect((await hub.registry.get('dev1')).responseBody).toMatchObject({
          status: 'disabled',
          statusReason: 'stolen',
          connectionState: 'Disconnected',
        });
        expect((await hub.registry.getTwin('dev1')).responseBody).toMatchObject({ status: 'disabled' });
        expect(hub.mqtt.isConnected('dev2')).toBe(true); // another device is not affected
      } finally {
        unsubscribe(MQTT_GATEWAY_CHANNEL, onEvent);
      }

      // a client opening now is refused with the SDK's UnauthorizedError (not retried)
      const again: DeviceClient = await hub.device('dev1', key);
      await expect(again.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });
      expect(hub.mqtt.isConnected('dev1')).toBe(false);

      // re-enabled: the first client's own retries get back in, and its twin works again
      const { responseBody: enabled } = await hub.registry.update({ deviceId: 'dev1', status: 'enabled' });
      expect(enabled).toMatchObject({ status: 'enabled', statusReason: 'stolen' });
      await eventually(() => (hub.mqtt.isConnected('dev1') ? true : undefined), 'dev1 reconnected by the SDK');
      expect((await client.getTwin()).properties.desired['$version']).toBe(1);
      expect((await hub.registry.get('dev1')).responseBody).toMatchObject({
        status: 'enabled',
        connectionState: 'Connected',
      });

      // and open() works (once the first client is closed: it has no retry left running then)
      await client.close();
      await again.open();
      expect((await again.getTwin()).properties.desired['$version']).toBe(1);
      await eventually(() => (hub.mqtt.isConnected('dev1') ? true : undefined), 'dev1 connected again');
    });

    it('a device created disabled cannot open() until it is enabled', async () => {
      const { responseBody } = await hub.registry.create({ deviceId: 'dev3', status: 'disabled' });
      expect(responseBody.status).toBe('disabled');
      const key = responseBody.authentication!.symmetricKey!.primaryKey;
      const client = await hub.device('dev3', key);
      await expect(client.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });
      await hub.registry.update({ deviceId: 'dev3', status: 'enabled' });
      await client.open();
      await eventually(() => (hub.mqtt.isConnected('dev3') ? true : undefined), 'dev3 connected');
    });
  });
}

deviceStatus('embedded');
deviceStatus('kafka');
