/** What the MQTT benchmarks (bench:gateway, bench:floor) share: latency summaries and simulated devices (their CA is test/compat/support/testCa.ts's). */
import { connect as tlsConnect, type SecureContext } from 'node:tls';
import mqttPacket from 'mqtt-packet';

/** Count, p50 and p99 of a latency sample (ms). */
export interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
}

/** The `p`th percentile of `xs` (nearest rank), NaN for no sample. */
export const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
export const latency = (xs: number[]): Latency => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99) });
export const fmt = (n: number | null): string => (n === null || Number.isNaN(n) ? 'n/a' : n.toFixed(1));

/**
 * One simulated device: a TLS socket speaking MQTT 3.1.1 through `mqtt-packet` (aedes' framing).
 * Sends `connect`, subscribes to `topics` at QoS 0 once accepted, and resolves with a QoS 0 publish
 * function on SUBACK; every PUBLISH the device receives goes to `onPublish`.
 */
export function connectDevice(options: {
  readonly port: number;
  readonly secureContext: SecureContext;
  readonly connect: Omit<mqttPacket.IConnectPacket, 'cmd' | 'protocolId' | 'protocolVersion'>;
  readonly topics: readonly string[];
  readonly onPublish: (p: mqttPacket.IPublishPacket) => void;
}): Promise<(topic: string, payload: Buffer) => void> {
  const { port, secureContext, connect, topics, onPublish } = options;
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, secureContext, servername: 'localhost' });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const write = (p: mqttPacket.Packet): boolean => socket.write(mqttPacket.generate(p));
    socket.on('error', (e: Error) => reject(e));
    socket.on('data', (b: Buffer) => parser.parse(b));
    socket.once('secureConnect', () => write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, ...connect }));
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'connack') {
        if (p.returnCode !== 0) return reject(new Error(`CONNACK ${p.returnCode ?? '?'} for ${connect.clientId}`));
        write({ cmd: 'subscribe', messageId: 1, subscriptions: topics.map((topic) => ({ topic, qos: 0 as const })) });
      } else if (p.cmd === 'suback') {
        resolve((topic, payload) => void write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }));
      } else if (p.cmd === 'publish') onPublish(p);
    });
  });
}

/** Run `connectOne(i)` for every i < `count`, `inFlight` at a time, until all ran or `budgetMs` passed. */
export async function connectFleet(
  count: number,
  inFlight: number,
  budgetMs: number,
  connectOne: (i: number) => Promise<void>,
): Promise<{ connected: number; failed: number; ms: number }> {
  const started = Date.now();
  let next = 0;
  let connected = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count && Date.now() - started < budgetMs) {
        const i = next++;
        try {
          await connectOne(i);
          connected++;
        } catch {
          failed++;
        }
      }
    }),
  );
  return { connected, failed, ms: Date.now() - started };
}
