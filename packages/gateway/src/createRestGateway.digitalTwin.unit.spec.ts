/**
 * The Plug and Play digital twin routes of the REST gateway (docs/iot-hub.md, "IoT Plug and Play")
 * over the in-memory log with a real projector, through a real HTTP server and fetch: what is
 * appended (one desired event per accepted JSON Patch, nothing for a refused one), etags, rights,
 * token scope and the refusals.
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRestGateway, type ListeningGateway, type RestGateway } from './createRestGateway.ts';
import { createDeviceKeyStore, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const READER_KEY = Buffer.alloc(32, 9).toString('base64');
const API = 'api-version=2021-04-12';
const MODEL = 'dtmi:com:example:Thermostat;1';

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
    policies: [
      { name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] },
      { name: 'registryRead', key: READER_KEY, rights: ['registryRead'] },
    ],
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

const token = (resource = HUB, policy = 'iothubowner', key = OWNER_KEY): string =>
  signServiceSas(resource, policy, key, Math.floor(time / 1000) + 3600);

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
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: text === '' ? undefined : (JSON.parse(text) as Record<string, any>),
  };
}

const endOf = async (topic: string): Promise<number> => (await log.endOffsets(topic)).reduce((a, b) => a + b, 0);
/** Records on twin.backend (writes, and the projector's facts of accepted commands). */
const backendEnd = (): Promise<number> => endOf(TOPICS.backend);
/** Applied events: one change record each. */
const changesEnd = (): Promise<number> => endOf(TOPICS.changes);

async function device(id: string): Promise<void> {
  expect((await call(`/devices/${id}`, { method: 'PUT', body: { deviceId: id } })).status).toBe(200);
  keys.set(id, { ...keys.get(id)!, modelId: MODEL }); // as the MQTT gateway records it at connect
}

describe('GET /digitaltwins/{id}', () => {
  it('answers the digital twin with the model id and the twin etag; 404 for an unknown device', async () => {
    await device('dev1');
    const got = await call('/digitaltwins/dev1');
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(got.json).toEqual({ $dtId: 'dev1', $metadata: { $model: MODEL } });
    const twin = await call('/twins/dev1');
    expect(got.headers.get('etag')).toBe(`"${twin.json!['etag']}"`);
    const missing = await call('/digitaltwins/nobody');
    expect(missing.status).toBe(404);
    expect(missing.json!['Message']).toMatch(/^ErrorCode:DeviceNotFound;/);
  });
});

describe('PATCH /digitaltwins/{id}', () => {
  it('appends one desired event and answers 202 with the new etag; JSON Patch content type accepted', async () => {
    await device('dev1');
    const before = await changesEnd();
    const patched = await call('/digitaltwins/dev1', {
      method: 'PATCH',
      body: [
        { op: 'add', path: '/targetTemperature', value: 21 },
        { op: 'add', path: '/thermostat1', value: { targetTemperature: 19, $metadata: {} } },
        { op: 'replace', path: '/targetTemperature', value: 22 },
      ],
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(patched.status).toBe(202);
    expect(patched.text).toBe('');
    expect(await changesEnd()).toBe(before + 1); // one desired event
    const twin = await call('/twins/dev1');
    expect(patched.headers.get('etag')).toBe(`"${twin.json!['etag']}"`);
    expect(twin.json!['properties']['desired']).toMatchObject({
      targetTemperature: 22,
      thermostat1: { __t: 'c', targetTemperature: 19 },
      $version: 2,
    });

    const dt = await call('/digitaltwins/dev1');
    expect(dt.json!['$metadata']['targetTemperature']).toMatchObject({ desiredValue: 22, desiredVersion: 2 });
    expect(dt.json!['thermostat1']).toMatchObject({
      $metadata: { targetTemperature: { desiredValue: 19, desiredVersion: 2 } },
    });
  });

  it('If-Match: the current etag applies, a stale one is 412 and appends nothing; a no-op patch appends nothing', async () => {
    await device('dev1');
    const etag = (await call('/digitaltwins/dev1')).headers.get('etag')!;
    const first = await call('/digitaltwins/dev1', {
      method: 'PATCH',
      body: [{ op: 'add', path: '/a', value: 1 }],
      headers: { 'if-match': etag },
    });
    expect(first.status).toBe(202);
    const before = await changesEnd();
    const stale = await call('/digitaltwins/dev1', {
      method: 'PATCH',
      body: [{ op: 'add', path: '/a', value: 2 }],
      headers: { 'if-match': etag },
    });
    expect(stale.status).toBe(412);
    expect(stale.json!['Message']).toMatch(/^ErrorCode:PreconditionFailed;/);
    const same = await call('/digitaltwins/dev1', { method: 'PATCH', body: [{ op: 'replace', path: '/a', value: 1 }] });
    expect(same.status).toBe(202);
    expect(same.headers.get('etag')).toBe(first.headers.get('etag'));
    // neither the refused nor the no-op patch applied anything
    expect(await changesEnd()).toBe(before);
    expect((await call('/twins/dev1')).json!['properties']['desired']['$version']).toBe(2);
  });

  it('refuses an invalid JSON Patch with 400 ArgumentInvalid before appending anything', async () => {
    await device('dev1');
    const before = await backendEnd();
    const cases: [unknown, RegExp][] = [
      [{ op: 'add', path: '/a', value: 1 }, /JSON Patch/],
      [[{ op: 'copy', from: '/a', path: '/b' }], /op copy is not supported/],
      [[{ op: 'remove', path: '/missing' }], /operation 0 \(remove \/missing\): the path does not exist/],
      [[{ op: 'add', path: '/$metadata/$model', value: 'x' }], /read-only/],
      [[{ op: 'add', path: '/a', value: { 'b c': 1 } }], /./], // an invalid key name: the twin write checks
    ];
    for (const [body, message] of cases) {
      const refused = await call('/digitaltwins/dev1', { method: 'PATCH', body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.json!['Message']).toMatch(/^ErrorCode:ArgumentInvalid;/);
      expect(refused.json!['Message']).toMatch(message);
    }
    expect(await backendEnd()).toBe(before);
    const text = await call('/digitaltwins/dev1', {
      method: 'PATCH',
      body: [],
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(400);
    expect(text.json!['Message']).toMatch(/^ErrorCode:InvalidContentEncodingOrType;/);
  });
});

describe('rights, scope and commands', () => {
  it('registryRead may read but not patch; a device-scoped token reaches its own digital twin only', async () => {
    await device('dev1');
    await device('dev2');
    const reader = token(HUB, 'registryRead', READER_KEY);
    expect((await call('/digitaltwins/dev1', { auth: reader })).status).toBe(200);
    expect(
      (await call('/digitaltwins/dev1', { method: 'PATCH', body: [{ op: 'add', path: '/a', value: 1 }], auth: reader }))
        .status,
    ).toBe(403);
    const scoped = token(`${HUB}/devices/dev1`);
    expect((await call('/digitaltwins/dev1', { auth: scoped })).status).toBe(200);
    expect((await call('/digitaltwins/dev2', { auth: scoped })).status).toBe(401);
  });

  it('commands (root and component) are refused with 405 MethodNotAllowed and the reason; unknown sub-paths are 404', async () => {
    await device('dev1');
    for (const path of [
      '/digitaltwins/dev1/commands/reboot',
      '/digitaltwins/dev1/components/thermostat1/commands/getMaxMinReport',
    ]) {
      const refused = await call(path, { method: 'POST', body: { delay: 1 } });
      expect(refused.status).toBe(405);
      expect(refused.json!['Message']).toMatch(
        /^ErrorCode:MethodNotAllowed;Plug and Play commands are direct methods, which twinlog does not support/,
      );
    }
    expect((await call('/digitaltwins/dev1/other')).status).toBe(404);
    expect((await call('/digitaltwins/dev1', { method: 'DELETE' })).status).toBe(405);
  });
});
