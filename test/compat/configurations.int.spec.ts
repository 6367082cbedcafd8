/**
 * Compatibility suite (issue #14, acceptance 2 and 6): automatic device configurations with the
 * unmodified `azure-iothub` `Registry` (`addConfiguration`, `getConfiguration`, `getConfigurations`,
 * `updateConfiguration` with and without `forceUpdate`, `removeConfiguration`) against twinlog's
 * REST gateway and the configuration manager of `@twinlog/fleet` (docs/iot-hub.md, "Automatic
 * configurations"), on the embedded backend and on Kafka: a configuration's content reaches the
 * desired properties of every twin its target condition matches (and an MQTT device is notified), and
 * is withdrawn when a twin stops matching.
 */
import type { Configuration } from 'azure-iothub';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackendKind } from './support/backends.ts';
import { eventually, startHub, type Hub } from './support/compatHarness.ts';

type Desired = Record<string, unknown>;

async function desiredOf(hub: Hub, deviceId: string): Promise<Desired> {
  const { responseBody } = await hub.registry.getTwin(deviceId);
  return responseBody.properties.desired;
}

function compat(kind: BackendKind): void {
  describe(`automatic configurations with the Registry on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind, { configurations: true });
    });
    afterEach(async () => {
      await hub.close();
    });

    it('add, apply to tagged twins, get, list, update with etags, withdraw on untag, remove', async () => {
      const { responseBody: identity } = await hub.registry.create({ deviceId: 'cfg-1' });
      await hub.registry.create({ deviceId: 'cfg-2' });

      const config: Configuration = {
        id: 'fw-prod',
        schemaVersion: '1.0',
        labels: { team: 'fleet' },
        content: {
          deviceContent: {
            'properties.desired.firmware': { version: '2.0' },
            'properties.desired.telemetry.interval': 30,
          },
        },
        targetCondition: "tags.env='prod'",
        priority: 10,
        metrics: {
          queries: { reporting: "SELECT deviceId FROM devices WHERE properties.reported.firmware.version = '2.0'" },
        },
      };
      const { responseBody: added } = await hub.registry.addConfiguration(config);
      expect(added).toMatchObject({
        id: 'fw-prod',
        priority: 10,
        targetCondition: "tags.env='prod'",
        schemaVersion: '1.0',
        labels: { team: 'fleet' },
      });
      expect(added.content?.deviceContent).toEqual(config.content?.deviceContent);
      expect(typeof added.etag).toBe('string');
      expect(Date.parse(added.createdTimeUtc)).not.toBeNaN();

      // the device is online over MQTT: it is notified of the content like of any desired change
      const device = await hub.device('cfg-1', identity.authentication!.symmetricKey!.primaryKey);
      await device.open();
      const deviceTwin = await device.getTwin();
      const notified: Desired[] = [];
      deviceTwin.on('properties.desired', (patch: Desired) => notified.push(patch));

      // tag one device: the content reaches its desired properties
      const { responseBody: twin } = await hub.registry.getTwin('cfg-1');
      await hub.registry.updateTwin('cfg-1', { tags: { env: 'prod' } }, twin.etag);
      await eventually(async () => {
        const d = await desiredOf(hub, 'cfg-1');
        return JSON.stringify(d['firmware']) === JSON.stringify({ version: '2.0' }) ? d : undefined;
      }, 'the configuration content on cfg-1');
      expect((await desiredOf(hub, 'cfg-1'))['telemetry']).toEqual({ interval: 30 });
      expect((await desiredOf(hub, 'cfg-2'))['firmware']).toBeUndefined(); // untagged: not targeted
      await eventually(
        () =>
          notified.some((p) => JSON.stringify(p['firmware']) === JSON.stringify({ version: '2.0' })) ? true : undefined,
        'the desired notification',
      );

      // get: system metrics count the targeted and applied twins; custom metrics their query
      const got = await eventually(async () => {
        const { responseBody } = await hub.registry.getConfiguration('fw-prod');
        return responseBody.systemMetrics?.results?.['appliedCount'] === 1 ? responseBody : undefined;
      }, 'appliedCount 1');
      expect(got.systemMetrics?.results).toEqual({ targetedCount: 1, appliedCount: 1 });
      expect(Object.keys(got.systemMetrics?.queries ?? {}).sort()).toEqual(['appliedCount', 'targetedCount']);
      expect(got.metrics).toEqual({ queries: config.metrics!.queries, results: { reporting: 0 } });
      expect(got.etag).toBe(added.etag);

      // list
      const { responseBody: list } = await hub.registry.getConfigurations();
      expect(list.map((c) => c.id)).toEqual(['fw-prod']);

      // update with the current etag (the object as returned, read-only members and all)
      const { responseBody: updated } = await hub.registry.updateConfiguration({
        ...got,
        priority: 20,
        labels: { team: 'ops' },
      });
      expect(updated).toMatchObject({ id: 'fw-prod', priority: 20, labels: { team: 'ops' } });
      expect(updated.etag).not.toBe(got.etag);
      expect(updated.createdTimeUtc).toBe(got.createdTimeUtc);
      // a stale etag: 412, which the SDK names InvalidEtagError
      await expect(hub.registry.updateConfiguration({ ...got, priority: 30 })).rejects.toMatchObject({
        name: 'InvalidEtagError',
      });
      // forceUpdate: If-Match *
      const { responseBody: forced } = await hub.registry.updateConfiguration({ ...got, priority: 25 }, true);
      expect(forced.priority).toBe(25);
      // content cannot change (IoT Hub): 400
      await expect(
        hub.registry.updateConfiguration({
          ...forced,
          content: { deviceContent: { 'properties.desired.firmware': { version: '3.0' } } },
        }),
      ).rejects.toMatchObject({ name: 'ArgumentError' });

      // untag: the content is withdrawn (its settings removed)
      const { responseBody: tagged } = await hub.registry.getTwin('cfg-1');
      await hub.registry.updateTwin('cfg-1', { tags: { env: null } }, tagged.etag);
      await eventually(
        async () => ((await desiredOf(hub, 'cfg-1'))['firmware'] === undefined ? true : undefined),
        'the content withdrawn from cfg-1',
      );
      expect((await desiredOf(hub, 'cfg-1'))['telemetry']).toEqual({});
      await eventually(
        () => (notified.some((p) => p['firmware'] === null) ? true : undefined),
        'the withdrawal notified to the device',
      );
      await eventually(async () => {
        const { responseBody } = await hub.registry.getConfiguration('fw-prod');
        return responseBody.systemMetrics?.results?.['targetedCount'] === 0 ? true : undefined;
      }, 'targetedCount 0');

      // remove; then 404 ConfigurationNotFound (the Node SDK turns a 404 of another name into Error('Not found'))
      await hub.registry.removeConfiguration('fw-prod');
      const missing = await hub.registry.getConfiguration('fw-prod').then(
        () => undefined,
        (e: unknown) => e as { message?: string; responseBody?: string; response?: { statusCode?: number } },
      );
      expect(missing?.message).toBe('Not found');
      expect(missing?.response?.statusCode).toBe(404);
      expect(missing?.responseBody).toContain('ErrorCode:ConfigurationNotFound');
      expect((await hub.registry.getConfigurations()).responseBody).toEqual([]);
    });

    it('refuses invalid configurations with 400 and unknown ones with 404', async () => {
      const base: Configuration = {
        id: 'ok-1',
        schemaVersion: '1.0',
        content: { deviceContent: { 'properties.desired.x': 1 } },
        targetCondition: "tags.a='b'",
        priority: 1,
      };
      await expect(
        hub.registry.addConfiguration({ ...base, targetCondition: 'properties.reported.x = 1' }),
      ).rejects.toMatchObject({ name: 'ArgumentError' });
      await expect(
        hub.registry.addConfiguration({ ...base, content: { deviceContent: { 'tags.x': 1 } } }),
      ).rejects.toMatchObject({ name: 'ArgumentError' });
      await expect(
        hub.registry.addConfiguration({ ...base, content: { modulesContent: { m: {} } } }),
      ).rejects.toMatchObject({ name: 'ArgumentError' });
      await expect(hub.registry.addConfiguration({ ...base, id: 'Upper' })).rejects.toMatchObject({
        name: 'ArgumentError',
      });
      await expect(hub.registry.removeConfiguration('nope')).rejects.toMatchObject({
        message: 'Not found',
        response: { statusCode: 404 },
      });
      await expect(hub.registry.updateConfiguration({ ...base, id: 'nope', etag: 'stale' })).rejects.toMatchObject({
        name: 'InvalidEtagError',
      });
    });
  });
}

compat('embedded');
compat('kafka');
