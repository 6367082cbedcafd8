/**
 * Compatibility with the real `azure-iothub` 1.16.6 `Registry` (docs/iot-hub.md, "REST" and "SDK behaviour twinlog accommodates"), in
 * process: the gateway serves HTTPS on 127.0.0.1 with a self-signed `localhost` certificate
 * (fixtures/), over the in-memory log with a real projector.
 *
 * The Node `Registry` always dials port 443 (docs/iot-hub.md "SDK behaviour twinlog accommodates"), so the test uses the documented workaround:
 * the private `registry._restApiClient.setOptions({ http: { agent }, ca })` with an `https.Agent`
 * whose `createConnection` forces the gateway's port; `Host` stays `localhost`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { Client as ServiceClient, Registry } from 'azure-iothub';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRestGateway, type ListeningGateway, type RestGateway } from './createRestGateway.ts';
import { FixedPortAgent } from '../../../test/support/fixedPortAgent.ts';

const KEY = readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.key.pem'));
const CERT = readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.cert.pem'));
const OWNER_KEY = Buffer.alloc(32, 5).toString('base64');

let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let gateway: RestGateway;
let server: ListeningGateway;
let registry: Registry;
let agent: FixedPortAgent;

beforeEach(async () => {
  log = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(log, 2);
  projector = await startProjector({ log, physicalNow: Date.now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: Date.now,
    actor: 'sdk-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 3000,
  });
  gateway = createRestGateway({
    log,
    client,
    hubName: 'localhost',
    physicalNow: Date.now,
    policies: [{ name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
  });
  server = await gateway.listen({ port: 0, host: '127.0.0.1', tls: { key: KEY, cert: CERT } });
  registry = Registry.fromConnectionString(
    `HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
  );
  agent = new FixedPortAgent(server.port, { ca: CERT, keepAlive: false });
  (registry as unknown as { _restApiClient: { setOptions(o: object): void } })._restApiClient.setOptions({
    http: { agent },
    ca: CERT,
  });
});

afterEach(async () => {
  agent.destroy();
  await server.close();
  await gateway.close();
  await client.close();
  await projector.stop();
  await log.close();
});

describe('createRestGateway with the azure-iothub Registry', () => {
  it('creates a device, reads and updates its twin, queries it and deletes it', async () => {
    const created = await registry.create({ deviceId: 'dev1' });
    expect(created.responseBody.deviceId).toBe('dev1');
    expect(created.responseBody.authentication?.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);

    const { responseBody: twin } = await registry.getTwin('dev1');
    expect(twin.deviceId).toBe('dev1');
    expect(twin.properties.desired['$version']).toBe(1);
    const etag = twin.etag;

    const updated = await registry.updateTwin(
      'dev1',
      { tags: { site: 'b' }, properties: { desired: { fw: '1.2' } } },
      etag,
    );
    expect(updated.responseBody.tags).toEqual({ site: 'b' });
    expect(updated.responseBody.properties.desired['fw']).toBe('1.2');

    await expect(registry.updateTwin('dev1', { tags: { site: 'c' } }, etag)).rejects.toMatchObject({
      name: 'InvalidEtagError',
    });

    const twinObject = updated.responseBody;
    await twinObject.update({ properties: { desired: { mode: 'eco' } } }); // Twin.update sends If-Match: "<its etag>"
    expect(twinObject.properties.desired['mode']).toBe('eco'); // copied from the full twin in the response (docs/iot-hub.md "REST (back ends)")

    await registry.create({ deviceId: 'dev2' });
    const query = registry.createQuery('SELECT * FROM devices', 1);
    const ids: string[] = [];
    while (query.hasMoreResults) {
      const page = await query.nextAsTwin();
      ids.push(...page.result.map((t) => t.deviceId));
    }
    expect(ids).toEqual(['dev1', 'dev2']);

    await registry.delete('dev1');
    await expect(registry.getTwin('dev1')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
    await expect(registry.create({ deviceId: 'dev2' })).rejects.toMatchObject({ name: 'DeviceAlreadyExistsError' });
  });

  it('refuses direct methods by name (405), for a device and for a module, not as an unknown route', async () => {
    const service = ServiceClient.fromConnectionString(
      `HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
    );
    (service as unknown as { _restApiClient: { setOptions(o: object): void } })._restApiClient.setOptions({
      http: { agent },
      ca: CERT,
    });
    const call = { methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 5 };
    for (const attempt of [
      () => service.invokeDeviceMethod('dev-1', call),
      () => service.invokeDeviceMethod('dev-1', 'mod-1', call),
    ]) {
      const e = (await attempt().then(
        () => undefined,
        (err: unknown) => err,
      )) as { responseBody?: string; response?: { statusCode?: number } } | undefined;
      expect(e?.response?.statusCode).toBe(405);
      expect(e?.responseBody).toContain('MethodNotAllowed');
      expect(e?.responseBody).toContain('Direct methods are not supported');
    }
  });
});
