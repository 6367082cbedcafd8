/**
 * Compatibility suite (issue #14, acceptance 3 and 6): module identities and module twins with the
 * unmodified `azure-iothub` `Registry` (`addModule`, `getModule`, `getModulesOnDevice`,
 * `updateModule`, `getModuleTwin`, `updateModuleTwin`, `removeModule`) against twinlog's REST
 * gateway (docs/iot-hub.md, "Module identities and module twins"), on the embedded backend and on
 * Kafka.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackendKind } from './support/backends.ts';
import { eventually, startHub, type Hub } from './support/compatHarness.ts';

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
      await expect(hub.registry.addModule({ deviceId: 'nodev', moduleId: 'm1' })).rejects.toMatchObject({ name: 'DeviceNotFoundError' });

      const { responseBody: added } = await hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' });
      expect(added).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', connectionState: 'Disconnected' });
      expect(added.authentication?.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);
      await expect(hub.registry.addModule({ deviceId: 'gw-1', moduleId: 'sensor' })).rejects.toMatchObject({ name: 'DeviceAlreadyExistsError' });
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
      const { responseBody: patched } = await hub.registry.updateModuleTwin('gw-1', 'sensor', { tags: { site: 'north' }, properties: { desired: { rate: 5 } } }, twin.etag);
      expect(patched).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', tags: { site: 'north' } });
      expect(patched.properties.desired['rate']).toBe(5);
      await expect(hub.registry.updateModuleTwin('gw-1', 'sensor', { tags: { site: 'south' } }, twin.etag)).rejects.toMatchObject({ name: 'InvalidEtagError' });
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
      await expect(hub.registry.getModuleTwin('gw-1', 'camera')).rejects.toMatchObject({ response: { statusCode: 404 } });
      expect((await hub.registry.getModulesOnDevice('gw-1')).responseBody.map((m) => m.moduleId)).toEqual(['sensor']);

      // deleting the device deletes its modules
      await hub.registry.delete('gw-1');
      await expect(hub.registry.getModuleTwin('gw-1', 'sensor')).rejects.toMatchObject({ response: { statusCode: 404 } });
      expect(hub.keys.get('gw-1/sensor')).toBeUndefined();
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
      const rows = (q: string) => async () => ((await hub.registry.createQuery(q).next()).result as { deviceId: string; moduleId?: string }[]).map((t) => (t.moduleId === undefined ? t.deviceId : `${t.deviceId}/${t.moduleId}`));
      const settled = (q: string, want: string[]) => eventually(async () => (JSON.stringify(await rows(q)()) === JSON.stringify(want) ? true : undefined), q);
      await settled("SELECT * FROM devices.modules WHERE tags.site = 'north'", ['gw-1/sensor']);
      await settled('SELECT * FROM devices.modules', ['gw-1/sensor', 'gw-2/sensor']);
      await settled("SELECT deviceId, moduleId FROM devices.modules WHERE deviceId = 'gw-2'", ['gw-2/sensor']);
      expect(await rows('SELECT * FROM devices')()).toEqual(['gw-1', 'gw-2']);
      const count = await hub.registry.createQuery('SELECT COUNT() AS n FROM devices').next();
      expect(count.result).toEqual([{ n: 2 }]);
    });
  });
}

compat('embedded');
compat('kafka');
