/**
 * The standing abuse suite (`npm run test:abuse`, part of `npm test`; SECURITY.md): the attacks
 * that were tried on twinlog, replayed against a real `twinlog serve` process (embedded log, REST
 * and MQTT gateways on 127.0.0.1). Each attack must be refused the documented way, and after all
 * of them the server must still be up and correct: `/health` 200, the process alive, and a device's
 * write and read round trip through both gateways. Times are never asserted, except as generous
 * bounds on "the server closed it at all".
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedHeader } from './support/mqttBytes.ts';
import { startServe, type Served } from './support/serveProcess.ts';

const HUB = 'abuse-hub';
const API = 'api-version=2021-04-12';
/** A generous bound on "the server closed it at all" (never a measured time). */
const CLOSED_WITHIN_MS = 30_000;

let dir: string;
let served: Served;
let policyKey: string;
const deviceKeys = new Map<string, string>();

const rest = (path: string, init: RequestInit & { token?: string } = {}): Promise<Response> =>
  fetch(`http://127.0.0.1:${served.gatewayPort}${path}${path.includes('?') ? '&' : '?'}${API}`, {
    ...init,
    headers: {
      authorization: init.token ?? serviceToken(HUB),
      'content-type': 'application/json',
      ...(init.headers as Record<string, string> | undefined),
    },
  });
const serviceToken = (sr: string, seconds = 600): string =>
  signServiceSas(sr, 'iothubowner', policyKey, Math.floor(Date.now() / 1000) + seconds);

/** Bytes written into a raw socket until the server closes it (or `limit` bytes are sent). */
function stream(port: number, first: Buffer, limit: number): Promise<{ written: number; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    let written = 0;
    let timedOut = false;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, CLOSED_WITHIN_MS);
    socket.on('error', () => {});
    socket.resume(); // read what the server answers (a 408, say), so its close is seen
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ written, closed: !timedOut });
    });
    socket.once('connect', () => {
      socket.write(first);
      written += first.length;
      const pump = (): void => {
        while (written < limit && !socket.destroyed) {
          written += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
  });
}

async function connectDevice(deviceId: string, options: Partial<mqtt.IClientOptions> = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${served.mqttPort!}`, {
    clientId: deviceId,
    username: `${HUB}/${deviceId}/?${API}`,
    password: signDeviceSas(HUB, deviceId, deviceKeys.get(deviceId)!, Math.floor(Date.now() / 1000) + 600),
    protocolVersion: 4,
    reconnectPeriod: 0,
    ...options,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** One twin request over MQTT: the response topic's status. */
async function twinRequest(
  client: mqtt.MqttClient,
  topic: string,
  body: string,
): Promise<{ status: string; body: string }> {
  const rid = String(Math.floor(Math.random() * 1e9));
  const answer = new Promise<{ status: string; body: string }>((resolve) => {
    const onMessage = (t: string, payload: Buffer): void => {
      if (!t.includes(`$rid=${rid}`)) return;
      client.off('message', onMessage);
      resolve({ status: t.split('/')[3]!, body: payload.toString() });
    };
    client.on('message', onMessage);
  });
  client.publish(`${topic}?$rid=${rid}`, body);
  return answer;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-abuse-'));
  served = await startServe(['--data', dir, '--hub-name', HUB, '--mqtt-port', '0', '--partitions', '2']);
  policyKey = (JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string }).key;
  for (const id of ['victim', 'attacker', 'bystander']) {
    const put = await rest(`/devices/${id}`, { method: 'PUT', body: JSON.stringify({ deviceId: id }) });
    expect(put.status).toBe(200);
    deviceKeys.set(
      id,
      ((await put.json()) as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey
        .primaryKey,
    );
  }
}, 60_000);

afterAll(async () => {
  if (served !== undefined && served.child.exitCode === null) {
    served.child.kill('SIGTERM');
    await served.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('abuse at the door of a running serve', () => {
  it('MQTT: unauthenticated connections declaring 200 MB are closed at the header, before the body is read', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => stream(served.mqttPort!, fixedHeader(1, 200 * 1024 * 1024), 80 * 1024 * 1024)),
    );
    for (const r of results) {
      expect(r.closed).toBe(true);
      expect(r.written).toBeLessThan(16 * 1024 * 1024); // the server stopped reading long before 80 MB
    }
  });

  it("MQTT: a logged-in device's 64 MB reported patch is closed at its header", async () => {
    const device = await connectDevice('attacker');
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    const header = mqttPacket.generate({
      cmd: 'publish',
      topic: '$iothub/twin/PATCH/properties/reported/?$rid=1',
      payload: Buffer.alloc(0),
      qos: 0,
      retain: false,
      dup: false,
    });
    // rewrite the length: declare 64 MB behind the same topic
    const topicBytes = header.subarray(2);
    const declared = Buffer.concat([fixedHeader(3, topicBytes.length + 64 * 1024 * 1024), topicBytes]);
    (device as unknown as { stream: Socket }).stream.write(declared);
    await closed;
    device.end(true);
  });

  it('MQTT: a connection that never sends CONNECT is closed', async () => {
    const r = await stream(served.mqttPort!, Buffer.alloc(0), 0);
    expect(r.closed).toBe(true);
  }, 60_000);

  it('MQTT: a will on the reported topic never becomes a write', async () => {
    const device = await connectDevice('attacker', {
      will: {
        topic: '$iothub/twin/PATCH/properties/reported/?$rid=9',
        payload: Buffer.from('{"fromWill":true}'),
        qos: 0,
        retain: false,
      },
    });
    (device as unknown as { stream: Socket }).stream.destroy();
    const again = await connectDevice('attacker');
    await new Promise<void>((resolve, reject) =>
      again.subscribe('$iothub/twin/res/#', { qos: 0 }, (e) => (e ? reject(e) : resolve())),
    );
    expect((await twinRequest(again, '$iothub/twin/PATCH/properties/reported/', '{"after":1}')).status).toBe('204');
    const twin = JSON.parse((await twinRequest(again, '$iothub/twin/GET/', '')).body) as {
      reported: Record<string, unknown>;
    };
    expect(twin.reported).toMatchObject({ after: 1 });
    expect(twin.reported).not.toHaveProperty('fromWill');
    again.end(true);
  });

  it('HTTP: headers that never end are cut off (slow-loris)', async () => {
    const r = await stream(
      served.gatewayPort,
      Buffer.from(`GET /twins/victim?${API} HTTP/1.1\r\nHost: x\r\nX-Slow: `),
      0,
    );
    expect(r.closed).toBe(true);
  }, 60_000);

  it('REST: a token scoped to one device reads no other device, lists nothing and queries nothing', async () => {
    const scoped = serviceToken(`${HUB}/devices/attacker`);
    expect((await rest('/twins/attacker', { token: scoped })).status).toBe(200);
    for (const [path, init] of [
      ['/twins/victim', {}],
      ['/devices/victim', {}],
      ['/devices/victim', { method: 'DELETE', headers: { 'if-match': '*' } }],
      ['/devices/query', { method: 'POST', body: JSON.stringify({ query: 'SELECT * FROM devices' }) }],
    ] as const) {
      const response = await rest(path, { ...init, token: scoped });
      expect(response.status, `${init.method ?? 'GET'} ${path}`).toBe(401);
    }
    expect((await rest('/twins/victim')).status).toBe(200); // the victim is still there
  });

  it('REST: every refused token gets the same 401 text; a 40-digit se is refused', async () => {
    const texts = new Set<string>();
    const forged = serviceToken(HUB).replace(/sig=[^&]+/, 'sig=AAAA');
    const farFuture = `SharedAccessSignature sr=${HUB}&sig=AAAA&se=${'9'.repeat(40)}&skn=iothubowner`;
    const expired = serviceToken(HUB, -60);
    for (const token of [forged, farFuture, expired, 'Bearer nonsense']) {
      const response = await rest('/twins/victim', { token });
      expect(response.status).toBe(401);
      texts.add(((await response.json()) as { Message: string }).Message); // ExceptionMessage carries a tracking id
    }
    expect(texts.size).toBe(1);
    expect([...texts][0]).not.toMatch(/sig|expire|se=|policy/i);
  });

  it('REST: a 10 MB body gets 413 and its connection is closed; text/plain and invalid UTF-8 get 400', async () => {
    const big = await rest('/twins/victim', {
      method: 'PATCH',
      body: `{"properties":{"desired":{"x":"${'a'.repeat(10 * 1024 * 1024)}"}}}`,
    }).catch((e: unknown) => e);
    if (big instanceof Response) {
      expect(big.status).toBe(413);
      expect(big.headers.get('connection')).toBe('close');
    } // else: the server closed the connection while the body was still being sent, as it may
    const plain = await rest('/twins/victim', {
      method: 'PATCH',
      body: '{"properties":{"desired":{"x":1}}}',
      headers: { 'content-type': 'text/plain' },
    });
    expect(plain.status).toBe(400);
    const invalid = await rest('/twins/victim', {
      method: 'PATCH',
      body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    });
    expect(invalid.status).toBe(400);
  });

  it('after all of it: the process is alive, /health is 200, and a device round trip works on both gateways', async () => {
    expect(served.child.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${served.adminPort}/health`)).status).toBe(200);
    const patched = await rest('/twins/bystander', {
      method: 'PATCH',
      body: JSON.stringify({ properties: { desired: { mode: 'eco' } } }),
    });
    expect(patched.status).toBe(200);
    const device = await connectDevice('bystander');
    await new Promise<void>((resolve, reject) =>
      device.subscribe('$iothub/twin/res/#', { qos: 0 }, (e) => (e ? reject(e) : resolve())),
    );
    expect((await twinRequest(device, '$iothub/twin/PATCH/properties/reported/', '{"mode":"eco"}')).status).toBe('204');
    const twin = JSON.parse((await twinRequest(device, '$iothub/twin/GET/', '')).body) as {
      desired: Record<string, unknown>;
      reported: Record<string, unknown>;
    };
    expect(twin.desired).toMatchObject({ mode: 'eco' });
    expect(twin.reported).toMatchObject({ mode: 'eco' });
    device.end(true);
  });
});
