/**
 * `twinlog module create|get|list|delete` against a REST gateway on an embedded log, as `twinlog
 * serve` runs it (docs/iot-hub.md, "Module identities and module twins"): the module twin is created
 * through the log with keys in the registry, the connection string names the module, an unknown
 * device fails with exit code 1 and IoT Hub's error name.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startGatewayHub, type GatewayHub } from './gatewayHub.fixture.ts';

let hub: GatewayHub;
beforeEach(async () => {
  hub = await startGatewayHub({ name: 'module', deviceKeys: true });
});
afterEach(() => hub.close());

const cli = (...args: string[]): ReturnType<GatewayHub['cli']> => hub.cli('module', ...args);
const twinlog = (...args: string[]): ReturnType<GatewayHub['twinlog']> => hub.twinlog(...args);

it('creates, gets, lists and deletes modules through the gateway', { timeout: 30_000 }, async () => {
  const missing = await cli('create', 'gw-1', 'sensor');
  expect(missing).toMatchObject({ code: 1, err: expect.stringContaining('DeviceNotFound') });
  await hub.client.createDevice('gw-1', { wait: true });

  const created = await cli('create', 'gw-1', 'sensor');
  expect(created.code).toBe(0);
  const key = hub.deviceKeys!.get('gw-1/sensor')!.primaryKey;
  expect(created.out).toContain(
    `connection string: HostName=localhost;DeviceId=gw-1;ModuleId=sensor;SharedAccessKey=${key}\n`,
  );
  expect((await hub.client.getTwin('gw-1/sensor')).moduleId).toBe('sensor');
  expect(await cli('create', 'gw-1', 'sensor')).toMatchObject({
    code: 1,
    err: expect.stringContaining('ModuleAlreadyExistsOnDevice'),
  });
  expect((await cli('create', 'gw-1', 'camera')).code).toBe(0);

  const got = await cli('get', 'gw-1', 'sensor', '--json');
  expect(JSON.parse(got.out)).toMatchObject({
    deviceId: 'gw-1',
    moduleId: 'sensor',
    authentication: { symmetricKey: { primaryKey: key } },
  });
  expect((await cli('list', 'gw-1')).out).toBe(
    'moduleId  connectionState\ncamera    Disconnected\nsensor    Disconnected\n',
  );
  expect(
    (await cli('list', 'gw-1', '--json')).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).moduleId),
  ).toEqual(['camera', 'sensor']);

  expect(await cli('delete', 'gw-1', 'camera')).toMatchObject({ code: 0, out: 'deleted module camera of gw-1\n' });
  expect((await cli('list', 'gw-1')).out).toBe('moduleId  connectionState\nsensor    Disconnected\n');
  expect(await cli('get', 'gw-1', 'camera')).toMatchObject({ code: 1, err: expect.stringContaining('ModuleNotFound') });
  expect(await cli('create', 'gw-1', 'a/b')).toMatchObject({
    code: 2,
    err: expect.stringContaining('not a module id'),
  });

  // the module twin is audited and read like any twin, by its id {deviceId}/{moduleId}
  const audit = await twinlog('audit', 'gw-1/sensor');
  expect(audit.code).toBe(0);
  expect(audit.out).toMatch(/^audit of gw-1\/sensor \(1 of 1 events\)\n.*gateway +create +→ version 2/);
  const twin = await twinlog('twin', 'get', 'gw-1/sensor');
  expect(JSON.parse(twin.out)).toMatchObject({ deviceId: 'gw-1', moduleId: 'sensor', version: 2 });

  // twinlog query and device list on the same log: devices are not their module twins
  expect((await twinlog('query', 'SELECT deviceId, moduleId FROM devices.modules')).out).toBe(
    '{"deviceId":"gw-1","moduleId":"sensor"}\n',
  );
  expect((await twinlog('query', 'SELECT deviceId FROM devices')).out).toBe('{"deviceId":"gw-1"}\n');
  expect(
    (await twinlog('device', 'list', '--json')).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).deviceId),
  ).toEqual(['gw-1']);

  // twinlog device delete deletes the device's modules too (twins and keys)
  const deleted = await twinlog('device', 'delete', 'gw-1');
  expect(deleted).toMatchObject({ code: 0, out: 'deleted module sensor of gw-1\ndeleted gw-1\n' });
  await expect(hub.client.getTwin('gw-1/sensor')).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
  expect(hub.deviceKeys!.get('gw-1/sensor')).toBeUndefined();
});
