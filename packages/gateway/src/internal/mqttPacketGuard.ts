/**
 * The door of one MQTT connection (docs/security.md, "Limits at the door"): a thin duplex stream
 * between the socket and aedes that reads each packet's fixed header as the bytes stream in and
 * closes the connection as soon as a header declares more than it may, before any of that body is
 * read into memory; plus the connection's CONNECT deadline, its idle timeout and, once the device
 * is known, the per-device request rate.
 *
 * The fixed header (MQTT 3.1.1 §2.2): one byte of packet type (high nibble) and flags, then the
 * "remaining length" (the size of the rest of the packet) in 1 to 4 bytes, 7 bits each, least
 * significant group first, the high bit set on every byte but the last; so at most 268 435 455.
 *
 *     byte 0      byte 1..4 (remaining length)        then remaining-length bytes of body
 *     TTTT FFFF   1LLLLLLL 1LLLLLLL 1LLLLLLL 0LLLLLLL  ...
 *
 * Bytes are passed on as the socket gave them (no copy); the body of a packet is skipped over by
 * arithmetic, so the scan costs a few operations per packet whatever its size.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/**
 * The limit a connection was closed for: a `limit` event's `limit` on `MQTT_GATEWAY_CHANNEL`
 * (`connections` is a connection refused at accept, `malformed` a first packet that is not a
 * CONNECT or a fixed header MQTT does not allow).
 *
 * @example
 * const limit: MqttLimitName = 'rate'
 */
export type MqttLimitName =
  'packetSize' | 'unauthenticatedBytes' | 'malformed' | 'connectTimeout' | 'idleTimeout' | 'rate' | 'connections';

/** A packet's fixed header, as {@link createFrameScanner} reads it. */
export interface FrameHeader {
  /** Control packet type, 0–15 (1 CONNECT, 3 PUBLISH, 8 SUBSCRIBE, 12 PINGREQ, …). */
  readonly type: number;
  /** The declared size of the rest of the packet, bytes. */
  readonly remainingLength: number;
  /** Size of the fixed header itself, 2–5 bytes. */
  readonly headerBytes: number;
  /** Offset of the packet's first byte in the stream. */
  readonly start: number;
}

/** Why a scan stopped: the limit and a sentence for the operator. */
export interface FrameVerdict {
  readonly limit: MqttLimitName;
  readonly detail: string;
}

/**
 * A scanner of MQTT packet boundaries in a byte stream fed in chunks of any size (a header may be
 * split across chunks). It calls `onHeader` once per packet, as soon as the packet's fixed header
 * is complete and before any of its body has been scanned; a verdict from `onHeader` stops the
 * scan, and every later call returns that verdict. A remaining length of more than 4 bytes and a
 * packet type of 0 (reserved) are `malformed`.
 *
 * @example
 * const scan = createFrameScanner((h) => (h.remainingLength > 1024 ? { limit: 'packetSize', detail: 'too big' } : undefined))
 * scan(Buffer.from([0x30, 0x80, 0x80, 0x04])) // { limit: 'packetSize', … }: a PUBLISH declaring 65 536 bytes
 */
export function createFrameScanner(
  onHeader: (header: FrameHeader) => FrameVerdict | undefined,
): (chunk: Uint8Array) => FrameVerdict | undefined {
  let offset = 0; // stream offset of chunk[0]
  let inHeader = false; // between a type byte and the last remaining-length byte
  let type = 0;
  let start = 0;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let bodyLeft = 0;
  let stopped: FrameVerdict | undefined;

  return (chunk) => {
    if (stopped !== undefined) return stopped;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (bodyLeft > 0) {
        const skip = Math.min(bodyLeft, n - i);
        bodyLeft -= skip;
        i += skip;
        continue;
      }
      const byte = chunk[i]!;
      i += 1;
      if (!inHeader) {
        type = byte >> 4;
        start = offset + i - 1;
        length = 0;
        multiplier = 1;
        lengthBytes = 0;
        inHeader = true;
        if (type === 0) return (stopped = { limit: 'malformed', detail: `packet type 0 (reserved) at byte ${start}` });
        continue;
      }
      length += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      lengthBytes += 1;
      if ((byte & 0x80) !== 0) {
        if (lengthBytes === 4)
          return (stopped = { limit: 'malformed', detail: `remaining length longer than 4 bytes at byte ${start}` });
        continue;
      }
      inHeader = false;
      const verdict = onHeader({ type, remainingLength: length, headerBytes: 1 + lengthBytes, start });
      if (verdict !== undefined) return (stopped = verdict);
      bodyLeft = length;
    }
    offset += n;
    return undefined;
  };
}

const CONNECT = 1;
/** Packets a client sends to ask for work (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ): each takes a rate token. */
const REQUESTS: ReadonlySet<number> = new Set([3, 8, 10, 12]);

/**
 * Options of {@link guardMqttSocket}.
 *
 * @example
 * const options: MqttPacketGuardOptions = { ...DEFAULT_MQTT_LIMITS, onLimit: (limit, detail) => console.warn(limit, detail) }
 */
export interface MqttPacketGuardOptions {
  /** Largest remaining length once accepted (`MqttLimits.maxPacketBytes`). */
  readonly maxPacketBytes: number;
  /** Bytes the connection may send before it is accepted, declared lengths included (`MqttLimits.maxUnauthenticatedBytes`). */
  readonly maxUnauthenticatedBytes: number;
  /** Time to {@link MqttPacketGuard.accept}, ms, from the guard's creation. */
  readonly connectTimeoutMs: number;
  /** Time without a byte from the client before the connection is closed, ms. */
  readonly idleTimeoutMs: number;
  /** Called once, when the guard closes the connection, with the limit, a sentence and the id given to `accept` (if any). */
  readonly onLimit: (limit: MqttLimitName, detail: string, id: string | undefined) => void;
}

/**
 * One guarded connection (see {@link guardMqttSocket}).
 *
 * @example
 * broker.handle(guard.stream)
 */
export interface MqttPacketGuard {
  /** The stream to hand to aedes (`aedes.handle(guard.stream)`): the socket's bytes in, aedes' bytes out. */
  readonly stream: Duplex;
  /**
   * The CONNECT was accepted: stop the CONNECT deadline, lift the unauthenticated byte budget
   * (packets are then held to `maxPacketBytes`), and from now on ask `admit` before each request
   * packet (false closes the connection for `rate`). `id` names the connection in `onLimit`.
   */
  accept(id: string, admit?: () => boolean): void;
  /** Bytes read from the socket so far. */
  readonly bytesRead: number;
}

/**
 * Guard a freshly accepted MQTT socket (after its TLS handshake) and give aedes the guarded stream.
 *
 * Until {@link MqttPacketGuard.accept}: the first packet must be a CONNECT, the packets received
 * may declare at most `maxUnauthenticatedBytes` in total, and `connectTimeoutMs` runs. After it:
 * each packet may declare at most `maxPacketBytes`, and each request packet asks `admit`. Always:
 * `idleTimeoutMs` of silence from the client closes the connection. A packet that passes a limit
 * closes the connection when its fixed header arrives (the chunk holding that header is not passed
 * on), so a connection never makes the broker buffer more than one socket read beyond a limit.
 *
 * Backpressure is kept both ways: the socket is paused while aedes has not read what it was given,
 * and aedes' writes wait for the socket's `'drain'`.
 *
 * @example
 * const server = net.createServer((socket) => {
 *   const guard = guardMqttSocket(socket, { ...DEFAULT_MQTT_LIMITS, onLimit: (limit) => console.warn(limit) })
 *   broker.handle(guard.stream)
 * })
 */
export function guardMqttSocket(socket: Socket, options: MqttPacketGuardOptions): MqttPacketGuard {
  const { maxPacketBytes, maxUnauthenticatedBytes, connectTimeoutMs, idleTimeoutMs, onLimit } = options;
  let accepted = false;
  let id: string | undefined;
  let admit: (() => boolean) | undefined;
  let bytesRead = 0;
  let stoppedBy: MqttLimitName | undefined;

  const scan = createFrameScanner((h) => {
    if (!accepted) {
      if (h.start === 0 && h.type !== CONNECT)
        return { limit: 'malformed', detail: `first packet of type ${h.type}, not CONNECT` };
      const end = h.start + h.headerBytes + h.remainingLength;
      if (end > maxUnauthenticatedBytes) {
        return {
          limit: 'unauthenticatedBytes',
          detail: `${end} bytes declared before the CONNECT was accepted (limit ${maxUnauthenticatedBytes})`,
        };
      }
      return undefined;
    }
    if (h.remainingLength > maxPacketBytes) {
      return {
        limit: 'packetSize',
        detail: `packet of type ${h.type} declares ${h.remainingLength} bytes (limit ${maxPacketBytes})`,
      };
    }
    if (admit !== undefined && REQUESTS.has(h.type) && !admit())
      return { limit: 'rate', detail: `request rate exceeded (packet of type ${h.type})` };
    return undefined;
  });

  const stop = (limit: MqttLimitName, detail: string): void => {
    if (stoppedBy !== undefined) return;
    stoppedBy = limit;
    clearTimers();
    socket.off('data', onData);
    onLimit(limit, detail, id);
    socket.destroy();
    stream.destroy();
  };

  const connectTimer = setTimeout(
    () => stop('connectTimeout', `no accepted CONNECT within ${connectTimeoutMs} ms`),
    connectTimeoutMs,
  );
  const idleTimer = setTimeout(() => stop('idleTimeout', `nothing received for ${idleTimeoutMs} ms`), idleTimeoutMs);
  connectTimer.unref();
  idleTimer.unref();
  const clearTimers = (): void => {
    clearTimeout(connectTimer);
    clearTimeout(idleTimer);
  };

  const afterDrain = (ok: boolean, callback: () => void): void => {
    if (ok) callback();
    else socket.once('drain', callback);
  };
  const stream = new Duplex({
    allowHalfOpen: false,
    read() {
      if (socket.isPaused()) socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      afterDrain(socket.write(chunk), () => callback());
    },
    writev(chunks, callback) {
      socket.cork();
      let ok = true;
      for (const { chunk } of chunks) ok = socket.write(chunk as Buffer);
      socket.uncork();
      afterDrain(ok, () => callback());
    },
    final(callback) {
      socket.end(() => callback());
    },
    destroy(error, callback) {
      clearTimers();
      socket.destroy();
      callback(error);
    },
  });

  function onData(chunk: Buffer): void {
    bytesRead += chunk.length;
    idleTimer.refresh();
    const verdict = scan(chunk);
    if (verdict !== undefined) return stop(verdict.limit, verdict.detail);
    if (!stream.push(chunk)) socket.pause();
  }
  socket.on('data', onData);
  socket.on('end', () => stream.push(null));
  socket.on('error', (e) => stream.destroy(e));
  socket.on('close', () => {
    clearTimers();
    stream.destroy();
  });

  return {
    stream,
    accept(acceptedId, acceptedAdmit) {
      accepted = true;
      id = acceptedId;
      admit = acceptedAdmit;
      clearTimeout(connectTimer);
    },
    get bytesRead() {
      return bytesRead;
    },
  };
}
