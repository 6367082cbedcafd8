import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createFrameScanner,
  guardMqttSocket,
  type FrameHeader,
  type MqttLimitName,
  type MqttPacketGuard,
  type MqttPacketGuardOptions,
} from './mqttPacketGuard.ts';
import { fixedHeader as header } from '../../../../test/support/mqttBytes.ts';

/** `bytes` cut at `cuts` (offsets, any order, duplicates allowed). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

describe('createFrameScanner', () => {
  it('finds every packet boundary however the stream is cut (property)', () => {
    const packetArb = fc.record({
      type: fc.integer({ min: 1, max: 15 }),
      length: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(127, 128, 16_383, 16_384, 70_000)),
    });
    fc.assert(
      fc.property(
        fc.array(packetArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (packets, cuts) => {
          const stream = Buffer.concat(
            packets.flatMap((p) => [header(p.type, p.length), Buffer.alloc(p.length, 0xff)]),
          );
          const seen: FrameHeader[] = [];
          const scan = createFrameScanner((h) => {
            seen.push(h);
            return undefined;
          });
          for (const chunk of split(stream, cuts)) expect(scan(chunk)).toBeUndefined();
          expect(seen.map((h) => ({ type: h.type, length: h.remainingLength }))).toEqual(packets);
          let start = 0;
          for (const h of seen) {
            expect(h.start).toBe(start);
            start += h.headerBytes + h.remainingLength;
          }
        },
      ),
      { seed: 12, numRuns: 300 },
    );
  });

  it('stops at the header that declares too much, before the body, whatever follows', () => {
    const scan = createFrameScanner((h) =>
      h.remainingLength > 1000 ? { limit: 'packetSize', detail: `${h.remainingLength}` } : undefined,
    );
    expect(scan(header(3, 10))).toBeUndefined();
    expect(scan(Buffer.alloc(10))).toBeUndefined();
    const big = header(3, 200 * 1024 * 1024); // 4 length bytes
    expect(scan(big.subarray(0, 3))).toBeUndefined(); // the header is not complete yet
    expect(scan(big.subarray(3))).toEqual({ limit: 'packetSize', detail: String(200 * 1024 * 1024) });
    expect(scan(Buffer.alloc(5))).toEqual({ limit: 'packetSize', detail: String(200 * 1024 * 1024) }); // stays stopped
  });

  it('calls a remaining length of 5 bytes and the reserved type 0 malformed', () => {
    const ok = (): undefined => undefined;
    expect(createFrameScanner(ok)(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))?.limit).toBe('malformed');
    expect(createFrameScanner(ok)(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).toBeUndefined(); // 268 435 455, the largest
    expect(createFrameScanner(ok)(Buffer.from([0x00, 0x00]))?.limit).toBe('malformed');
  });
});

// ---- the guard on real sockets ------------------------------------------------------------------

interface Guarded {
  readonly guard: MqttPacketGuard;
  readonly socket: Socket;
  /** What reached the guarded stream's reader. */
  readonly received: Buffer[];
  readonly limits: { limit: MqttLimitName; detail: string; id: string | undefined }[];
}

let server: Server | undefined;
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
  server = undefined;
});

const OPTIONS: Omit<MqttPacketGuardOptions, 'onLimit'> = {
  maxPacketBytes: 1024,
  maxUnauthenticatedBytes: 64,
  connectTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
};

/** A server whose connections are guarded; resolves with the port and each connection as it comes. */
async function guardedServer(
  options: Partial<MqttPacketGuardOptions> = {},
): Promise<{ port: number; next: () => Promise<Guarded> }> {
  const waiting: ((g: Guarded) => void)[] = [];
  const ready: Guarded[] = [];
  server = createServer((socket) => {
    const received: Buffer[] = [];
    const limits: Guarded['limits'] = [];
    const guard = guardMqttSocket(socket, {
      ...OPTIONS,
      ...options,
      onLimit: (limit, detail, id) => limits.push({ limit, detail, id }),
    });
    guard.stream.on('data', (b: Buffer) => received.push(b));
    guard.stream.on('error', () => {});
    const g = { guard, socket, received, limits };
    const w = waiting.shift();
    if (w === undefined) ready.push(g);
    else w(g);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    next: () => (ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((r) => waiting.push(r))),
  };
}

async function dial(port: number): Promise<Socket> {
  const c = connect(port, '127.0.0.1');
  c.on('error', () => {});
  clients.push(c);
  await once(c, 'connect');
  return c;
}

const CONNECT_PACKET = mqttPacket.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clientId: 'dev1',
  clean: true,
  keepalive: 60,
});

describe('guardMqttSocket', () => {
  it('passes the bytes on untouched, and aedes’ writes back', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(CONNECT_PACKET);
    await expect.poll(() => Buffer.concat(g.received).length).toBe(CONNECT_PACKET.length);
    expect(Buffer.concat(g.received)).toEqual(CONNECT_PACKET);
    g.guard.accept('dev1');
    const publish = mqttPacket.generate({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.alloc(1000, 7),
      qos: 0,
      retain: false,
      dup: false,
    });
    c.write(publish);
    await expect.poll(() => Buffer.concat(g.received).length).toBe(CONNECT_PACKET.length + publish.length);
    const back: Buffer[] = [];
    c.on('data', (b: Buffer) => back.push(b));
    g.guard.stream.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    await expect.poll(() => Buffer.concat(back)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    expect(g.limits).toEqual([]);
  });

  it('closes an unauthenticated connection at a header declaring more than its budget, before the body is sent', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(header(1, 200 * 1024 * 1024)); // a CONNECT declaring 200 MB, and no body at all
    await once(c, 'close');
    expect(g.limits.map((l) => l.limit)).toEqual(['unauthenticatedBytes']);
    expect(g.guard.bytesRead).toBe(5);
    expect(g.received).toEqual([]); // nothing reached the broker
  });

  it('counts every byte before the CONNECT is accepted, not only the first packet', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(CONNECT_PACKET); // ~20 bytes
    c.write(header(12, 0)); // PINGREQs pipelined behind it...
    await expect.poll(() => Buffer.concat(g.received).length).toBe(CONNECT_PACKET.length + 2);
    c.write(Buffer.concat([header(8, 50), Buffer.alloc(50)])); // ...and a SUBSCRIBE that passes 64 bytes in all
    await once(c, 'close');
    expect(g.limits.map((l) => l.limit)).toEqual(['unauthenticatedBytes']);
  });

  it('wants a CONNECT first', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(header(12, 0));
    await once(c, 'close');
    expect(g.limits.map((l) => l.limit)).toEqual(['malformed']);
  });

  it('holds packets to maxPacketBytes once accepted, and names the device', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(CONNECT_PACKET);
    await expect.poll(() => g.received.length).toBe(1);
    g.guard.accept('dev1');
    c.write(Buffer.concat([header(3, 1024), Buffer.alloc(1024)])); // at the limit: passes
    await expect.poll(() => Buffer.concat(g.received).length).toBe(CONNECT_PACKET.length + 3 + 1024);
    c.write(header(3, 1025));
    await once(c, 'close');
    expect(g.limits).toEqual([
      { limit: 'packetSize', detail: 'packet of type 3 declares 1025 bytes (limit 1024)', id: 'dev1' },
    ]);
  });

  it('closes a connection whose CONNECT is not accepted in time, and not one that was', async () => {
    const { port, next } = await guardedServer({ connectTimeoutMs: 100 });
    const silent = await dial(port);
    const gSilent = await next();
    const good = await dial(port);
    const gGood = await next();
    gGood.guard.accept('dev1');
    await once(silent, 'close');
    expect(gSilent.limits.map((l) => l.limit)).toEqual(['connectTimeout']);
    await new Promise((r) => setTimeout(r, 200));
    expect(good.destroyed).toBe(false);
    expect(gGood.limits).toEqual([]);
  });

  it('closes a connection that stays silent, and not one that keeps talking', async () => {
    const { port, next } = await guardedServer({ idleTimeoutMs: 300 });
    const silent = await dial(port);
    const gSilent = await next();
    const talker = await dial(port);
    const gTalker = await next();
    talker.write(CONNECT_PACKET);
    await expect.poll(() => gTalker.received.length).toBe(1);
    gSilent.guard.accept('quiet');
    gTalker.guard.accept('talker');
    const ping = setInterval(() => talker.write(header(12, 0)), 50);
    try {
      await once(silent, 'close');
      expect(gSilent.limits.map((l) => [l.limit, l.id])).toEqual([['idleTimeout', 'quiet']]);
      expect(talker.destroyed).toBe(false);
    } finally {
      clearInterval(ping);
    }
  });

  it('asks admit before each request packet, and closes the connection on a refusal', async () => {
    const { port, next } = await guardedServer();
    const c = await dial(port);
    const g = await next();
    c.write(CONNECT_PACKET);
    await expect.poll(() => g.received.length).toBe(1);
    let tokens = 3;
    const asked: number[] = [];
    g.guard.accept('dev1', () => {
      asked.push(tokens);
      return tokens-- > 0;
    });
    c.write(Buffer.from([0x40, 0x02, 0x00, 0x01])); // PUBACK: not a request
    c.write(Buffer.concat([header(12, 0), header(12, 0), header(12, 0)]));
    await expect.poll(() => asked.length).toBe(3);
    expect(c.destroyed).toBe(false);
    c.write(header(12, 0));
    await once(c, 'close');
    expect(g.limits.map((l) => l.limit)).toEqual(['rate']);
  });

  it('keeps backpressure: a slow reader pauses the socket instead of buffering without end', async () => {
    const { port, next } = await guardedServer({
      maxPacketBytes: 64 * 1024 * 1024,
      maxUnauthenticatedBytes: 64 * 1024 * 1024,
    });
    const c = await dial(port);
    const g = await next();
    g.guard.stream.pause();
    g.guard.stream.removeAllListeners('data');
    const body = Buffer.alloc(8 * 1024 * 1024);
    c.write(Buffer.concat([header(1, body.length), body]));
    await new Promise((r) => setTimeout(r, 300));
    expect(g.guard.stream.readableLength).toBeLessThan(1024 * 1024); // the rest waits in the kernel and the client
    let read = 0;
    g.guard.stream.on('data', (b: Buffer) => (read += b.length));
    g.guard.stream.resume();
    await expect.poll(() => read, { timeout: 10_000 }).toBe(5 + body.length);
  });
});
