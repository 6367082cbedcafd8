/**
 * Module identities and module twins over REST (docs/iot-hub.md, "Module identities and module
 * twins") on the in-memory log with a real projector, through a real HTTP server: a module twin is
 * the twin `{deviceId}/{moduleId}`, created, written and deleted through the log like a device's.
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRestGateway,
  MAX_MODULES_PER_DEVICE,
  type ListeningGateway,
  type RestGateway,
} from './createRestGateway.ts';
import { createDeviceKeyStore, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const API = 'api-version=2021-04-12';

let time: number;
const now = (): number => time;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let keys: DeviceKeyStore;
let gateway: RestGateway;
let server: ListeningGateway;

beforeEach(async () => {
  time = 1_750_000_000_000;
  log = createInMemoryLog({ now });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: now,
    actor: 'gateway-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 3000,
  });
  keys = createDeviceKeyStore();
  gateway = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: now,
    deviceKeys: keys,
    policies: [{ name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
  });
  server = await gateway.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await server.close();
  await gateway.close();
  await client.close();
  await projector.stop();
  await log.close();
});

const token = (resource = HUB): string =>
  signServiceSas(resource, 'iothubowner', OWNER_KEY, Math.floor(time / 1000) + 3600);

async function call(
  path: string,
  {
    method = 'GET',
    body,
    headers = {},
    auth = token(),
  }: { method?: string; body?: unknown; headers?: Record<string, string>; auth?: string } = {},
) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}?${API}`, {
    method,
    headers: {
      authorization: auth,
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, text, json: text === '' ? undefined : JSON.parse(text) };
}

const backendEnd = async (): Promise<number> => (await log.endOffsets(TOPICS.backend)).reduce((a, b) => a + b, 0);

async function device(id: string): Promise<void> {
  expect((await call(`/devices/${id}`, { method: 'PUT', body: { deviceId: id } })).status).toBe(200);
}
async function module(id: string, mid: string): Promise<any> {
  const r = await call(`/devices/${id}/modules/${mid}`, { method: 'PUT', body: { deviceId: id, moduleId: mid } });
  expect(r.status).toBe(200);
  return r.json;
}

describe('module identities: PUT/GET/DELETE /devices/{id}/modules/{mid}, GET /devices/{id}/modules', () => {
  it('creates a module of an existing device with generated keys, as a twin {id}/{mid} on the log', async () => {
    const missing = await call('/devices/nodev/modules/m1', { method: 'PUT', body: {} });
    expect(missing.status).toBe(404);
    expect(missing.json.Message).toContain('DeviceNotFound');
    await device('dev1');
    const m = await module('dev1', 'm1');
    expect(m).toMatchObject({
      deviceId: 'dev1',
      moduleId: 'm1',
      connectionState: 'Disconnected',
      authentication: { type: 'sas' },
    });
    expect(Buffer.from(m.authentication.symmetricKey.primaryKey, 'base64')).toHaveLength(32);
    expect(keys.get('dev1/m1')?.primaryKey).toBe(m.authentication.symmetricKey.primaryKey);
    const twice = await call('/devices/dev1/modules/m1', { method: 'PUT', body: {} });
    expect(twice.status).toBe(409);
    expect(twice.json.Message).toMatch(/^ErrorCode:ModuleAlreadyExistsOnDevice;/);
    expect((await call('/devices/dev1/modules/m1')).json).toEqual(m);
    const unknown = await call('/devices/dev1/modules/m9');
    expect(unknown.status).toBe(404);
    expect(unknown.json.Message).toMatch(/^ErrorCode:ModuleNotFound;/);
    await module('dev1', 'm0');
    expect((await call('/devices/dev1/modules')).json.map((x: any) => x.moduleId)).toEqual(['m0', 'm1']);
    expect((await call('/devices/nodev/modules')).status).toBe(404);
  });

  it("updates a module's keys and status with If-Match, keeping what is not given", async () => {
    await device('dev1');
    const m = await module('dev1', 'm1');
    const key = Buffer.alloc(32, 3).toString('base64');
    const u = await call('/devices/dev1/modules/m1', {
      method: 'PUT',
      headers: { 'if-match': `"${m.etag}"` },
      body: { authentication: { symmetricKey: { primaryKey: key } }, status: 'disabled' },
    });
    expect(u.status).toBe(200);
    expect(u.json.authentication.symmetricKey).toEqual({
      primaryKey: key,
      secondaryKey: m.authentication.symmetricKey.secondaryKey,
    });
    expect(keys.get('dev1/m1')?.status).toBe('disabled');
    expect(u.json.etag).not.toBe(m.etag);
  });

  it('deletes a module (its twin and keys); deleting the device deletes its modules', async () => {
    await device('dev1');
    await module('dev1', 'm1');
    await module('dev1', 'm2');
    expect((await call('/devices/dev1/modules/m1', { method: 'DELETE', headers: { 'if-match': '*' } })).status).toBe(
      204,
    );
    expect((await call('/twins/dev1/modules/m1')).status).toBe(404);
    expect(keys.get('dev1/m1')).toBeUndefined();
    expect((await call('/devices/dev1/modules/m1', { method: 'DELETE' })).status).toBe(404);
    expect((await call('/devices/dev1/modules')).json.map((x: any) => x.moduleId)).toEqual(['m2']);
    expect((await call('/devices/dev1', { method: 'DELETE' })).status).toBe(204);
    expect((await call('/twins/dev1/modules/m2')).status).toBe(404);
    expect(keys.get('dev1/m2')).toBeUndefined();
    // created again, the device has no modules
    await device('dev1');
    expect((await call('/devices/dev1/modules')).json).toEqual([]);
  });
});

describe('module twins: GET/PATCH/PUT /twins/{id}/modules/{mid}', () => {
  it('answers the module twin with deviceId and moduleId, written like a device twin and apart from it', async () => {
    await device('dev1');
    await module('dev1', 'm1');
    const t = await call('/twins/dev1/modules/m1');
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({
      deviceId: 'dev1',
      moduleId: 'm1',
      version: 2,
      properties: { desired: { $version: 1 }, reported: { $version: 1 } },
    });
    const p = await call('/twins/dev1/modules/m1', {
      method: 'PATCH',
      headers: { 'if-match': `"${t.json.etag}"` },
      body: { tags: { site: 'a' }, properties: { desired: { rate: 5 } } },
    });
    expect(p.status).toBe(200);
    expect(p.json).toMatchObject({
      moduleId: 'm1',
      tags: { site: 'a' },
      properties: { desired: { rate: 5, $version: 2 } },
    });
    const stale = await call('/twins/dev1/modules/m1', {
      method: 'PATCH',
      headers: { 'if-match': `"${t.json.etag}"` },
      body: { tags: { site: 'b' } },
    });
    expect(stale.status).toBe(412);
    const put = await call('/twins/dev1/modules/m1', {
      method: 'PUT',
      headers: { 'if-match': `"${p.json.etag}"` },
      body: { properties: { desired: { mode: 'x' } } },
    });
    expect(put.status).toBe(200);
    expect(put.json.tags).toEqual({});
    expect(put.json.properties.desired).toMatchObject({ mode: 'x' });
    expect(put.json.properties.desired.rate).toBeUndefined();
    const dev = await call('/twins/dev1');
    expect(dev.json.moduleId).toBeUndefined();
    expect(dev.json.tags).toEqual({});
    expect(dev.json.properties.desired.$version).toBe(1);
    const missing = await call('/twins/dev1/modules/m9');
    expect(missing.status).toBe(404);
    expect(missing.json.Message).toMatch(/^ErrorCode:ModuleNotFound;/);
    expect((await call('/twins/dev1/modules/m9', { method: 'PATCH', body: { tags: { a: 1 } } })).json.Message).toMatch(
      /^ErrorCode:ModuleNotFound;/,
    );
    expect((await call('/twins/nodev/modules/m1')).json.Message).toMatch(/^ErrorCode:ModuleNotFound;/);
  });

  it('refuses a device id or module id containing / (%2F) before anything is appended', async () => {
    await device('dev1');
    await module('dev1', 'm1');
    const before = await backendEnd();
    for (const [method, path] of [
      ['PUT', '/devices/dev1%2Fm2'],
      ['GET', '/twins/dev1%2Fm1'],
      ['PATCH', '/twins/dev1%2Fm1'],
      ['PUT', '/devices/dev1/modules/a%2Fb'],
    ] as const) {
      const r = await call(path, { method, body: method === 'GET' ? undefined : { tags: { a: 1 } } });
      expect(r.status, `${method} ${path}`).toBe(400);
    }
    expect(await backendEnd()).toBe(before);
  });
});

describe('the module quota', () => {
  it(
    "refuses a device's 51st module identity with 403 IotHubQuotaExceeded, appending nothing",
    { timeout: 60_000 },
    async () => {
      await device('dev1');
      for (let i = 0; i < MAX_MODULES_PER_DEVICE; i++) await module('dev1', `m${i}`);
      const before = await backendEnd();
      const refused = await call('/devices/dev1/modules/one-more', {
        method: 'PUT',
        body: { deviceId: 'dev1', moduleId: 'one-more' },
      });
      expect(refused.status).toBe(403);
      expect(refused.json.Message).toMatch(/^ErrorCode:IotHubQuotaExceeded;/);
      expect(await backendEnd()).toBe(before);
      // another device has its own quota
      await device('dev2');
      await module('dev2', 'm0');
    },
  );
});

describe('module scope of SAS tokens', () => {
  it('a device-scoped token reaches its modules; a module-scoped token only that module', async () => {
    await device('dev1');
    await device('dev2');
    await module('dev1', 'm1');
    await module('dev1', 'm2');
    await module('dev2', 'm1');
    const deviceToken = token(`${HUB}/devices/dev1`);
    expect((await call('/twins/dev1/modules/m1', { auth: deviceToken })).status).toBe(200);
    expect((await call('/devices/dev1/modules', { auth: deviceToken })).status).toBe(200);
    expect((await call('/twins/dev2/modules/m1', { auth: deviceToken })).status).toBe(401);
    const moduleToken = token(`${HUB}/devices/dev1/modules/m1`);
    expect((await call('/twins/dev1/modules/m1', { auth: moduleToken })).status).toBe(200);
    expect((await call('/devices/dev1/modules/m1', { auth: moduleToken })).status).toBe(200);
    expect((await call('/twins/dev1/modules/m2', { auth: moduleToken })).status).toBe(401);
    expect((await call('/twins/dev1', { auth: moduleToken })).status).toBe(401);
    expect((await call('/devices/dev1/modules', { auth: moduleToken })).status).toBe(401);
  });
});

describe('queries without a read model', () => {
  it('FROM devices answers device twins only, FROM devices.modules module twins only', async () => {
    await device('dev1');
    await module('dev1', 'm1');
    await module('dev1', 'm2');
    const q = async (query: string) =>
      (await call('/devices/query', { method: 'POST', body: { query } })).json as any[];
    expect((await q('SELECT * FROM devices')).map((t) => t.deviceId)).toEqual(['dev1']);
    expect((await q('SELECT * FROM devices')).every((t) => t.moduleId === undefined)).toBe(true);
    expect((await q('SELECT * FROM devices.modules')).map((t) => `${t.deviceId}/${t.moduleId}`)).toEqual([
      'dev1/m1',
      'dev1/m2',
    ]);
    expect(await q("SELECT deviceId, moduleId FROM devices.modules WHERE moduleId = 'm2'")).toEqual([
      { deviceId: 'dev1', moduleId: 'm2' },
    ]);
  });
});
