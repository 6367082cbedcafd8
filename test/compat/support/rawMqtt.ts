/**
 * A minimal MQTT 3.1.1 client over TLS built on `mqtt-packet` (the framing library aedes uses),
 * for tests and the benchmark that need to see the wire: CONNACK return codes, SUBACK grants,
 * exact topics and payloads, a connection closed by the server.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';

export interface RawMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: number;
}

export interface RawClient {
  readonly socket: TLSSocket;
  /** Every PUBLISH received, in order. */
  readonly messages: RawMessage[];
  /** The CONNACK return code. */
  readonly returnCode: number;
  readonly sessionPresent: boolean;
  subscribe(topics: readonly string[], qos?: 0 | 1): Promise<number[]>;
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1 | 2): void;
  /** The next message whose topic starts with `prefix` (waits for it). */
  next(prefix: string, timeoutMs?: number): Promise<RawMessage>;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  end(): Promise<void>;
}

export interface RawConnectOptions {
  readonly port: number;
  readonly ca: string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  readonly clean?: boolean;
  readonly keepalive?: number;
}

/** Connect and wait for the CONNACK (resolves also when it refuses: check `returnCode`). */
export function rawConnect({
  port,
  ca,
  clientId,
  username,
  password,
  clean = false,
  keepalive = 60,
}: RawConnectOptions): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const messages: RawMessage[] = [];
    const waiters: { prefix: string; resolve: (m: RawMessage) => void; from: number }[] = [];
    const subacks = new Map<number, (granted: number[]) => void>();
    let nextId = 1;
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    socket.on('close', () => closedResolve());
    socket.on('error', () => {});
    socket.on('data', (b) => parser.parse(b));
    const write = (packet: mqttPacket.Packet): void => {
      socket.write(mqttPacket.generate(packet, { protocolVersion: 4 }));
    };
    let connackSeen = false;
    parser.on('packet', (packet: mqttPacket.Packet) => {
      if (packet.cmd === 'connack') {
        connackSeen = true;
        resolve(client(packet.returnCode ?? 0, packet.sessionPresent));
      } else if (packet.cmd === 'publish') {
        const m = { topic: packet.topic, payload: Buffer.from(packet.payload), qos: packet.qos };
        messages.push(m);
        if (packet.qos === 1 && packet.messageId !== undefined) write({ cmd: 'puback', messageId: packet.messageId });
        for (const w of [...waiters]) {
          if (m.topic.startsWith(w.prefix) && messages.indexOf(m) >= w.from) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
            break;
          }
        }
      } else if (packet.cmd === 'suback') {
        subacks.get(packet.messageId ?? 0)?.(packet.granted as number[]);
      }
    });
    socket.once('secureConnect', () => {
      write({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean,
        clientId,
        keepalive,
        ...(username === undefined ? {} : { username }),
        ...(password === undefined ? {} : { password: Buffer.from(password) }),
      });
    });
    socket.once('close', () => {
      if (!connackSeen) reject(new Error('closed before CONNACK'));
    });
    let consumed = 0;
    const client = (returnCode: number, sessionPresent: boolean): RawClient => ({
      socket,
      messages,
      returnCode,
      sessionPresent,
      subscribe(topics, qos = 0) {
        const messageId = nextId++;
        return new Promise((res) => {
          subacks.set(messageId, res);
          write({ cmd: 'subscribe', messageId, subscriptions: topics.map((topic) => ({ topic, qos })) });
        });
      },
      publish(topic, payload, qos = 0) {
        write({
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos,
          retain: false,
          dup: false,
          ...(qos > 0 ? { messageId: nextId++ } : {}),
        });
      },
      next(prefix, timeoutMs = 20_000) {
        const found = messages.findIndex((m, i) => i >= consumed && m.topic.startsWith(prefix));
        if (found >= 0) {
          consumed = found + 1;
          return Promise.resolve(messages[found]!);
        }
        return new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`no message on ${prefix}`)), timeoutMs);
          waiters.push({
            prefix,
            from: consumed,
            resolve: (m) => {
              clearTimeout(timer);
              consumed = messages.indexOf(m) + 1;
              res(m);
            },
          });
        });
      },
      closed,
      async end() {
        if (!socket.destroyed) {
          write({ cmd: 'disconnect' });
          socket.end();
        }
        await closed;
      },
    });
  });
}
