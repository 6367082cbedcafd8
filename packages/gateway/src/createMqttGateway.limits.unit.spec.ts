/**
 * Limits at the door of the MQTT gateway (docs/security.md): each test passes one limit with a raw
 * client and shows that another device's twin round trip (SUBSCRIBE, GET, 200) still works during
 * or right after the abuse. In-memory log with a real projector; real sockets on 127.0.0.1.
 * Times are never asserted, except as generous bounds on "closed at all".
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import mqttPacket from 'mqtt-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createMqttGateway,
  MQTT_GATEWAY_CHANNEL,
  type ListeningMqttGateway,
  type MqttGateway,
  type MqttGatewayEvent,
  type MqttLimits,
} from './createMqttGateway.ts';
import { createDeviceKeyStore, newDeviceKeys, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signDeviceSas } from './internal/verifyDeviceSas.ts';
import { fixedHeader } from '../../../test/support/mqttBytes.ts';

const HUB = 'localhost';
const TLS = {
  key: readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.key.pem')),
  cert: readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.cert.pem')),
};
/** A generous bound on "the server closed it at all" (never a measured time). */
const CLOSED_WITHIN_MS = 10_000;

let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let keys: DeviceKeyStore;
let gateway: MqttGateway | undefined;
let listening: ListeningMqttGateway | undefined;
let limitEvents: Extract<MqttGatewayEvent, { kind: 'limit' }>[];
const onEvent = (e: unknown): void => {
  if ((e as MqttGatewayEvent).kind === 'limit') limitEvents.push(e as Extract<MqttGatewayEvent, { kind: 'limit' }>);
};
const sockets: Socket[] = [];

beforeEach(async () => {
  log = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(log, 2);
  projector = await startProjector({ log, physicalNow: Date.now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: Date.now,
    actor: 'limits-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 5000,
  });
  keys = createDeviceKeyStore();
  for (const id of ['good', 'abuser']) {
    await client.createDevice(id, { wait: true });
    keys.set(id, newDeviceKeys());
  }
  limitEvents = [];
  subscribe(MQTT_GATEWAY_CHANNEL, onEvent);
});

afterEach(async () => {
  unsubscribe(MQTT_GATEWAY_CHANNEL, onEvent);
  for (const s of sockets.splice(0)) s.destroy();
  await listening?.close();
  await gateway?.close();
  listening = undefined;
  gateway = undefined;
  await client.close();
  await projector.stop();
  await log.close();
});

async function startGateway(limits: Partial<MqttLimits>, tls = false): Promise<number> {
  gateway = createMqttGateway({ log, client, hubName: HUB, physicalNow: Date.now, deviceKeys: keys, limits });
  listening = await gateway.listen({ port: 0, host: '127.0.0.1', ...(tls ? { tls: TLS } : {}) });
  return listening.port;
}

// ---- a raw MQTT 3.1.1 client -------------------------------------------------------------------

interface Raw {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  send(packet: mqttPacket.Packet): void;
  /** The next packet matching `match` (including ones already received and not yet taken). */
  next(match: (p: mqttPacket.Packet) => boolean): Promise<mqttPacket.Packet>;
}

async function dial(port: number, tls: boolean): Promise<Raw> {
  const socket = tls
    ? tlsConnect({ host: '127.0.0.1', port, ca: TLS.cert, servername: 'localhost' })
    : netConnect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const inbox: mqttPacket.Packet[] = [];
  const waiters: { match: (p: mqttPacket.Packet) => boolean; resolve: (p: mqttPacket.Packet) => void }[] = [];
  parser.on('packet', (p: mqttPacket.Packet) => {
    const w = waiters.find((x) => x.match(p));
    if (w === undefined) inbox.push(p);
    else {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(p);
    }
  });
  socket.on('data', (b: Buffer) => parser.parse(b));
  await new Promise<void>((resolve, reject) => {
    socket.once(tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('close', () => reject(new Error('closed before it was open')));
  });
  return {
    socket,
    closed,
    send: (packet) => socket.write(mqttPacket.generate(packet, { protocolVersion: 4 })),
    next: (match) =>
      new Promise((resolve, reject) => {
        const i = inbox.findIndex(match);
        if (i >= 0) return resolve(inbox.splice(i, 1)[0]!);
        waiters.push({ match, resolve });
        void closed.then(() => reject(new Error('connection closed while waiting for a packet')));
      }),
  };
}

function connectPacket(deviceId: string, keepalive = 60): mqttPacket.IConnectPacket {
  const key = keys.get(deviceId)!.primaryKey;
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: deviceId,
    clean: true,
    keepalive,
    username: `${HUB}/${deviceId}/?api-version=2021-04-12`,
    password: Buffer.from(signDeviceSas(HUB, deviceId, key, Math.floor(Date.now() / 1000) + 3600)),
  };
}

async function login(port: number, deviceId: string, { tls = false, keepalive = 60 } = {}): Promise<Raw> {
  const c = await dial(port, tls);
  c.send(connectPacket(deviceId, keepalive));
  const connack = await c.next((p) => p.cmd === 'connack');
  expect((connack as mqttPacket.IConnackPacket).returnCode).toBe(0);
  return c;
}

let rid = 0;
/** The device's twin GET on an open connection: SUBSCRIBE to responses once, then GET → 200. */
async function getTwin(c: Raw): Promise<Record<string, unknown>> {
  const r = String(++rid);
  c.send({ cmd: 'subscribe', messageId: rid, subscriptions: [{ topic: '$iothub/twin/res/#', qos: 0 }] });
  await c.next((p) => p.cmd === 'suback');
  c.send({
    cmd: 'publish',
    topic: `$iothub/twin/GET/?$rid=${r}`,
    payload: Buffer.alloc(0),
    qos: 0,
    retain: false,
    dup: false,
  });
  const res = (await c.next(
    (p) => p.cmd === 'publish' && p.topic.startsWith('$iothub/twin/res/'),
  )) as mqttPacket.IPublishPacket;
  expect(res.topic).toBe(`$iothub/twin/res/200/?$rid=${r}`);
  return JSON.parse(res.payload.toString()) as Record<string, unknown>;
}

/** Another device connects, reads its twin and leaves: the gateway serves everyone else. */
async function roundTrip(port: number, tls = false): Promise<void> {
  const c = await login(port, 'good', { tls });
  expect(await getTwin(c)).toMatchObject({ desired: { $version: 1 }, reported: { $version: 1 } });
  c.socket.destroy();
  await c.closed;
}

/** `promise`, or a failure naming `what` after {@link CLOSED_WITHIN_MS}. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(`${what}: not within ${CLOSED_WITHIN_MS} ms`)), CLOSED_WITHIN_MS)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Write `total` bytes in 64 KiB chunks as fast as the socket takes them, until done or closed. */
async function stream(socket: Socket, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let sent = 0;
  while (sent < total && !socket.destroyed) {
    if (!socket.write(chunk))
      await new Promise<void>((r) => (socket.once('drain', () => r()), socket.once('close', () => r())));
    sent += chunk.length;
  }
  return sent;
}

describe('MQTT limits at the door', { timeout: 30_000 }, () => {
  it('closes unauthenticated TLS connections at a fixed header declaring 200 MB, having read almost nothing, while another device works', async () => {
    const port = await startGateway({ connectTimeoutMs: 60_000 }, true); // no timeout can explain a close
    const raw: Socket[] = [];
    listening!.server.on('connection', (s: Socket) => raw.push(s));

    // the header alone: closed before a byte of body is sent
    const headerOnly = await dial(port, true);
    headerOnly.socket.write(fixedHeader(1, 200 * 1024 * 1024));
    await within(headerOnly.closed, 'a CONNECT declaring 200 MB');

    // three connections declaring 200 MB and streaming 80 MB each, as in the report
    const abusers = await Promise.all([0, 1, 2].map(() => dial(port, true)));
    const streamed = abusers.map((a) => {
      a.socket.write(fixedHeader(1, 200 * 1024 * 1024));
      return stream(a.socket, 80 * 1024 * 1024);
    });
    await roundTrip(port, true); // during the abuse
    await within(Promise.all(abusers.map((a) => a.closed)), 'the streaming connections');
    await Promise.all(streamed);
    for (const s of raw.slice(0, 4)) expect(s.bytesRead).toBeLessThan(1024 * 1024); // of 80 MB offered each
    expect(limitEvents.filter((e) => e.limit === 'unauthenticatedBytes')).toHaveLength(4);
    await roundTrip(port, true);
  });

  it('closes a logged-in device at a PUBLISH declaring more than maxPacketBytes, before buffering it, while another device works', async () => {
    const port = await startGateway({ maxPacketBytes: 256 * 1024 });
    const raw: Socket[] = [];
    listening!.server.on('connection', (s: Socket) => raw.push(s));
    const abuser = await login(port, 'abuser');
    // a telemetry message just under the limit passes, and the connection keeps working
    abuser.send({
      cmd: 'publish',
      topic: 'devices/abuser/messages/events/',
      payload: Buffer.alloc(255 * 1024, 1),
      qos: 0,
      retain: false,
      dup: false,
    });
    expect(await getTwin(abuser)).toMatchObject({ reported: { $version: 1 } });
    const before = raw[0]!.bytesRead;
    abuser.socket.write(fixedHeader(3, 64 * 1024 * 1024)); // a 64 MB reported patch
    const sent = stream(abuser.socket, 64 * 1024 * 1024);
    await within(abuser.closed, 'a PUBLISH declaring 64 MB');
    await sent;
    expect(raw[0]!.bytesRead - before).toBeLessThan(1024 * 1024);
    expect(limitEvents).toMatchObject([{ kind: 'limit', limit: 'packetSize', deviceId: 'abuser' }]);
    expect(gateway!.isConnected('abuser')).toBe(false);
    await roundTrip(port);
  });

  it('closes connections without an accepted CONNECT after connectTimeoutMs, TLS handshake or not, while another device works', async () => {
    const port = await startGateway({ connectTimeoutMs: 1_000 }, true);
    const silentTls = await dial(port, true); // handshake done, then nothing
    const slowTls = await dial(port, true); // a CONNECT one byte at a time, too slowly
    const bytes = mqttPacket.generate(connectPacket('abuser'));
    let i = 0;
    const drip = setInterval(() => i < bytes.length && slowTls.socket.write(bytes.subarray(i, ++i)), 100);
    const noHandshake = netConnect(port, '127.0.0.1'); // TCP only: never says hello
    sockets.push(noHandshake);
    noHandshake.on('error', () => {});
    const noHandshakeClosed = new Promise<void>((r) => noHandshake.once('close', () => r()));
    try {
      await roundTrip(port, true);
      await within(Promise.all([silentTls.closed, slowTls.closed, noHandshakeClosed]), 'connections without a CONNECT');
    } finally {
      clearInterval(drip);
    }
    expect(limitEvents.filter((e) => e.limit === 'connectTimeout')).toHaveLength(3); // two CONNECTs and one TLS handshake
    await roundTrip(port, true);
  });

  it('refuses the connection past maxConnections while the ones it holds keep working', async () => {
    const port = await startGateway({ maxConnections: 3 });
    const good = await login(port, 'good');
    const idle = [await dial(port, false), await dial(port, false)];
    const refused = netConnect(port, '127.0.0.1');
    sockets.push(refused);
    refused.on('error', () => {});
    await within(new Promise<void>((r) => refused.once('close', () => r())), 'the connection past the cap');
    await expect.poll(() => limitEvents.map((e) => e.limit)).toEqual(['connections']);
    expect(await getTwin(good)).toMatchObject({ desired: { $version: 1 } }); // an existing device, during the siege
    good.socket.destroy();
    await good.closed;
    idle[0]!.socket.destroy();
    await idle[0]!.closed;
    // room again: a device gets in (Node counts a closed connection out a little later)
    await expect
      .poll(
        async () =>
          roundTrip(port).then(
            () => true,
            () => false,
          ),
        { timeout: CLOSED_WITHIN_MS },
      )
      .toBe(true);
  });

  it('disconnects a device over its request rate, as IoT Hub does, and another device keeps working', async () => {
    const port = await startGateway({ deviceRequestsPerSecond: 5, deviceRequestBurst: 10 });
    const good = await login(port, 'good');
    const abuser = await login(port, 'abuser');
    const ping = mqttPacket.generate({ cmd: 'pingreq' });
    abuser.socket.write(Buffer.concat(Array.from({ length: 200 }, () => ping))); // 200 requests at once: 40 s worth
    await within(abuser.closed, 'the throttled device');
    expect(limitEvents).toMatchObject([{ kind: 'limit', limit: 'rate', deviceId: 'abuser' }]);
    expect(await getTwin(good)).toMatchObject({ desired: { $version: 1 } }); // its own bucket
    expect(gateway!.isConnected('good')).toBe(true);
    // the bucket is the device's, not the connection's: reconnecting does not refill it
    const again = await login(port, 'abuser');
    again.socket.write(Buffer.concat(Array.from({ length: 20 }, () => ping)));
    await within(again.closed, 'the throttled device, reconnected');
    await roundTrip(port);
  });

  it('closes a device that stays silent past idleTimeoutMs, whatever keep-alive it announced, and another device keeps working', async () => {
    const port = await startGateway({ idleTimeoutMs: 1_000 });
    const silent = await login(port, 'abuser', { keepalive: 0 }); // keep-alive 0: aedes would never time it out
    await roundTrip(port);
    await within(silent.closed, 'the silent device');
    expect(limitEvents).toMatchObject([{ kind: 'limit', limit: 'idleTimeout', deviceId: 'abuser' }]);
    await roundTrip(port);
  });
});

describe('token lifetime on MQTT (the REST gateway applies the same rule)', () => {
  it('refuses a device token whose se lies beyond maxTokenLifetimeMs, accepts one inside it', async () => {
    gateway = createMqttGateway({
      log,
      client,
      hubName: HUB,
      physicalNow: Date.now,
      deviceKeys: keys,
      maxTokenLifetimeMs: 2 * 3_600_000,
    });
    listening = await gateway.listen({ port: 0, host: '127.0.0.1' });
    const port = listening.port;
    const key = keys.get('abuser')!.primaryKey;
    const far = await dial(port, false);
    far.send({
      ...connectPacket('abuser'),
      password: Buffer.from(signDeviceSas(HUB, 'abuser', key, Math.floor(Date.now() / 1000) + 3 * 3600)),
    });
    const refused = (await far.next((p) => p.cmd === 'connack')) as mqttPacket.IConnackPacket;
    expect(refused.returnCode).not.toBe(0);
    await roundTrip(port); // a token one hour ahead, inside the two-hour bound
  });
});

describe('will messages', () => {
  it('a will on a twin topic never becomes a reported write when the connection drops', async () => {
    const port = await startGateway({});
    const dropped = await dial(port, false);
    dropped.send({
      ...connectPacket('abuser'),
      will: {
        topic: '$iothub/twin/PATCH/properties/reported/?$rid=66',
        payload: Buffer.from('{"fromWill":true}'),
        qos: 0,
        retain: false,
      },
    });
    expect(((await dropped.next((p) => p.cmd === 'connack')) as mqttPacket.IConnackPacket).returnCode).toBe(0);
    dropped.socket.destroy(); // no DISCONNECT: the broker would publish the will now
    await dropped.closed;
    // the same device reports afterwards: in partition order, a will write would land before it
    const again = await login(port, 'abuser');
    again.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/res/#', qos: 0 }] });
    await again.next((p) => p.cmd === 'suback');
    again.send({
      cmd: 'publish',
      topic: '$iothub/twin/PATCH/properties/reported/?$rid=67',
      payload: Buffer.from('{"after":1}'),
      qos: 0,
      retain: false,
      dup: false,
    });
    const ack = (await again.next(
      (p) => p.cmd === 'publish' && p.topic.includes('$rid=67'),
    )) as mqttPacket.IPublishPacket;
    expect(ack.topic).toMatch(/^\$iothub\/twin\/res\/204\//);
    const twin = await getTwin(again);
    expect(twin['reported']).toMatchObject({ after: 1 });
    expect(twin['reported']).not.toHaveProperty('fromWill');
  });
});
