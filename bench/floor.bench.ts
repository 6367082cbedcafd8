/**
 * bench:floor — the latency floors under issue #4's targets with NO twinlog code: what MQTT over
 * TLS and one Kafka transaction cost on this machine by themselves. Two parts, one after the other
 * (the Kafka broker is started only after the MQTT part, so its JVM does not share the cores).
 *
 * 1. MQTT+TLS floor. This process runs a bare aedes broker on `node:tls` (ECDSA P-256 certificate
 *    from a CA made with the `openssl` CLI, as bench:gateway) that accepts every CONNECT and
 *    answers each PUBLISH on `$iothub/twin/PATCH/properties/reported/?$rid=N` at once (in
 *    `authorizePublish`, where the gateway handles requests) with a PUBLISH of
 *    `$iothub/twin/res/204/?$rid=N&$version=1` to that client: no auth, no log, no Kafka. A child
 *    process (this file with `--devices`) runs BENCH_DEVICES (5,000) devices as bench:gateway's
 *    does: one TLS socket each (one shared secure context), MQTT 3.1.1 through `mqtt-packet`,
 *    CONNECT, SUBSCRIBE `$iothub/twin/res/#`, 100 handshakes in flight; once all are connected,
 *    every device PUBLISHes a reported PATCH every BENCH_INTERVAL_MS (1000) at its own phase for
 *    BENCH_DURATION_S (20). Measured: sent/s and acked/s in the window, ack (PUBLISH → 204) p50/p99
 *    in the child, and `process.cpuUsage()` (user + system) of the server and of the child over the
 *    window, as a share of all cores (`os.availableParallelism()`).
 * 2. Kafka transactional floor. Broker: `KAFKA_BROKERS`, else `startKafkaBroker()` (test/kafkaBroker.ts),
 *    stopped at the end if this run started it. kafkajs, a fresh 1-partition topic per variant: a
 *    transactional producer (idempotent, maxInFlightRequests 1, as the Kafka log's) loops
 *    `transaction()` → `send` one small record (acks -1) → `sendOffsets` (a group's offset on that
 *    topic, retried on CONCURRENT_TRANSACTIONS as the log does) → `commit()`, back to back,
 *    BENCH_TXNS (200) times after 10 unmeasured; a read_committed consumer (minBytes 1,
 *    maxWaitTimeInMs 10) reads the topic. Two variants: the producer's retry at kafkajs' defaults
 *    (first retry after 300 ms, doubling; as createKafkaLog), then every 5 ms — the broker answers the next
 *    transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until the previous one's markers
 *    are written, so the client's backoff is part of every back-to-back step. Measured: the
 *    transaction (`transaction()` → `commit()` returned; `commit()` alone is printed too) and
 *    produce (just before `send`) → the consumer's `eachMessage`, p50/p99. RESULT's kafka figures
 *    are the 5 ms variant's: the least an exactly-once projector step costs on this broker.
 *
 * Bounded: connecting gives up after BENCH_CONNECT_S (120) s, the whole run after BENCH_BUDGET_S (300) s.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer } from 'node:tls';
import { Aedes, type PublishPacket } from 'aedes';
import { Kafka, logLevel, type RetryOptions } from 'kafkajs';
import mqttPacket from 'mqtt-packet';
import { startKafkaBroker, type KafkaBroker } from '../test/kafkaBroker.ts';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DEVICES = env('BENCH_DEVICES', 5000);
const DURATION_S = env('BENCH_DURATION_S', 20);
const INTERVAL_MS = env('BENCH_INTERVAL_MS', 1000);
const TXNS = env('BENCH_TXNS', 200);
const CONNECT_S = env('BENCH_CONNECT_S', 120);
const BUDGET_S = env('BENCH_BUDGET_S', 300);
const CORES = availableParallelism();
const REPORTED = '$iothub/twin/PATCH/properties/reported/';

interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
}
interface DeviceStats {
  readonly connected: number;
  readonly connectMs: number;
  readonly sent: number;
  readonly ack: Latency;
  readonly errors: number;
  readonly cpuMs: number;
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const latency = (xs: number[]): Latency => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99) });
const fmt = (n: number): string => (Number.isNaN(n) ? 'n/a' : n.toFixed(1));
const round1 = (n: number): number => Math.round(n * 10) / 10;
const cpuMs = (since?: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- 1. the device fleet (child process) ----------------------------------------------------------

async function runDevices(port: number, ca: string): Promise<void> {
  const ackMs: number[] = [];
  let sent = 0;
  let errors = 0;
  let measuring = false;
  const pendingAt = new Map<string, number>();
  const sockets: ((topic: string, payload: Buffer) => void)[] = [];
  const secureContext = createSecureContext({ ca });

  const connectOne = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, secureContext, servername: 'localhost' });
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const write = (p: mqttPacket.Packet): boolean => socket.write(mqttPacket.generate(p));
      socket.on('error', (e) => reject(e));
      socket.on('data', (b) => parser.parse(b));
      socket.once('secureConnect', () =>
        write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `floor-${i}`, keepalive: 600, username: 'floor', password: Buffer.from('x') }),
      );
      parser.on('packet', (p: mqttPacket.Packet) => {
        if (p.cmd === 'connack') {
          if (p.returnCode !== 0) return reject(new Error(`CONNACK ${p.returnCode ?? '?'}`));
          write({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/res/#', qos: 0 }] });
        } else if (p.cmd === 'suback') {
          sockets[i] = (topic, payload) => void write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
          resolve();
        } else if (p.cmd === 'publish') {
          const now = performance.now();
          const id = new URLSearchParams(p.topic.slice(p.topic.indexOf('?') + 1)).get('$rid') ?? '';
          const at = pendingAt.get(id);
          pendingAt.delete(id);
          if (!p.topic.startsWith('$iothub/twin/res/204/')) errors++;
          else if (at !== undefined && measuring) ackMs.push(now - at);
        }
      });
    });

  const started = Date.now();
  let next = 0;
  let connected = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < DEVICES && Date.now() - started < CONNECT_S * 1000) {
        const i = next++;
        try {
          await connectOne(i);
          connected++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const connectMs = Date.now() - started;

  process.stdout.write(`READY ${connected}\n`);
  measuring = true;
  const cpu0 = process.cpuUsage();
  const timers: NodeJS.Timeout[] = [];
  let rid = 0;
  for (let i = 0; i < DEVICES; i++) {
    const tick = (): void => {
      const s = sockets[i];
      if (s === undefined) return;
      const id = `r${rid++}`;
      sent++;
      pendingAt.set(id, performance.now());
      s(`${REPORTED}?$rid=${id}`, Buffer.from(JSON.stringify({ temp: 20 + (rid % 10), seq: rid })));
    };
    timers.push(setTimeout(() => (tick(), timers.push(setInterval(tick, INTERVAL_MS))), (i / DEVICES) * INTERVAL_MS));
  }
  await sleep(DURATION_S * 1000);
  measuring = false;
  const cpu = cpuMs(cpu0);
  for (const t of timers) clearInterval(t);
  const stats: DeviceStats = { connected, connectMs, sent, ack: latency(ackMs), errors, cpuMs: cpu };
  process.stdout.write(`STATS ${JSON.stringify(stats)}\n`, () => process.exit(0));
}

// ---- 1. the bare MQTT server (this process) -------------------------------------------------------

function makeCa(dir: string): { ca: string; key: string; cert: string } {
  const at = (f: string): string => join(dir, f);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '1', '-subj', '/CN=bench CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(at('ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.pem'), '-days', '1', '-extfile', at('ext'));
  return { ca: readFileSync(at('ca.pem'), 'utf8'), key: readFileSync(at('server.key'), 'utf8'), cert: readFileSync(at('server.pem'), 'utf8') };
}

interface MqttFloor {
  readonly stats: DeviceStats;
  readonly serverCpuMs: number;
  readonly windowMs: number;
}

async function mqttFloor(children: Set<ChildProcess>): Promise<MqttFloor> {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-floor-'));
  const tls = makeCa(dir);
  rmSync(dir, { recursive: true, force: true });
  const broker = new Aedes({
    authorizePublish(client, packet, done) {
      if (client !== null && packet.topic.startsWith(REPORTED)) {
        const rid = packet.topic.slice(packet.topic.indexOf('$rid=') + 5);
        const ack: PublishPacket = { cmd: 'publish', topic: `$iothub/twin/res/204/?$rid=${rid}&$version=1`, payload: Buffer.alloc(0), qos: 0, retain: false, dup: false };
        client.publish(ack, () => {});
      }
      done(null);
    },
    // as the gateway: no device-to-device routing, the server's own packets go to their client
    authorizeForward: (_client, packet) => ((packet as { clientId?: string }).clientId === undefined ? packet : null),
  });
  await broker.listen();
  const server = createTlsServer({ key: tls.key, cert: tls.cert }, broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  const t = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--devices', String(port)], {
    env: { ...process.env, BENCH_CA: tls.ca },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let window: Promise<{ cpu: number; ms: number }> | undefined;
  const stats = await new Promise<DeviceStats>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('READY ')) {
        console.log(`  connected ${line.slice(6)}/${DEVICES} devices in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        window = sleep(DURATION_S * 1000).then(() => ({ cpu: cpuMs(cpu0), ms: performance.now() - t0 }));
      } else if (line.startsWith('STATS ')) resolve(JSON.parse(line.slice(6)) as DeviceStats);
    });
    child.once('exit', (code) => reject(new Error(`the device process exited with ${String(code)} before its figures`)));
  });
  if (window === undefined) throw new Error('the device process never said READY');
  const { cpu, ms } = await window;
  if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { stats, serverCpuMs: cpu, windowMs: ms };
}

// ---- 2. the Kafka transaction floor ---------------------------------------------------------------

interface KafkaFloor {
  readonly commit: Latency;
  readonly step: Latency;
  readonly visible: Latency;
  readonly busy: number;
}

let concurrentRefusals = 0; // CONCURRENT_TRANSACTIONS answers kafkajs logged (it retries AddPartitionsToTxn itself)
const isBusy = (e: unknown): boolean => {
  for (let x = e as { code?: unknown; cause?: unknown } | undefined; x !== undefined && x !== null; x = x.cause as typeof x) {
    if (x.code === 51 || x.code === 14) return true; // CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS
  }
  return false;
};

/** TXNS transactions in a row on a fresh topic, with the producer's `retry`. */
async function kafkaFloor(kafka: Kafka, prefix: string, retry: RetryOptions): Promise<KafkaFloor> {
  const topic = `${prefix}t`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  const producer = kafka.producer({ transactionalId: `${prefix}tx`, idempotent: true, maxInFlightRequests: 1, retry });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: `${prefix}reader`, minBytes: 1, maxWaitTimeInMs: 10, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const visibleAt = new Map<number, number>();
  let seen = -1;
  await consumer.run({
    eachMessage: async ({ message }) => {
      const i = Number(message.value?.toString());
      visibleAt.set(i, performance.now());
      seen = Math.max(seen, i);
    },
  });
  const waitSeen = async (i: number): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while (seen < i) {
      if (Date.now() > deadline) throw new Error(`the read_committed consumer did not see record ${i} within 60 s`);
      await sleep(2);
    }
  };

  const WARMUP = 10;
  const producedAt: number[] = [];
  const commitMs: number[] = [];
  const stepMs: number[] = [];
  let busy = 0;
  for (let i = 0; i < WARMUP + TXNS; i++) {
    if (i === WARMUP) busy = concurrentRefusals = 0;
    const t0 = performance.now();
    const tx = await producer.transaction();
    producedAt[i] = performance.now();
    await tx.send({ topic, acks: -1, messages: [{ key: 'device', value: String(i) }] });
    for (;;) {
      try {
        await tx.sendOffsets({ consumerGroupId: `${prefix}projector`, topics: [{ topic, partitions: [{ partition: 0, offset: String(i + 1) }] }] });
        break;
      } catch (e) {
        if (!isBusy(e)) throw e; // kafkajs does not retry AddOffsetsToTxn: as createKafkaLog, retry it
        busy++;
        await sleep(5);
      }
    }
    const t1 = performance.now();
    await tx.commit();
    const t2 = performance.now();
    if (i >= WARMUP) {
      commitMs.push(t2 - t1);
      stepMs.push(t2 - t0);
    }
    if (i === WARMUP - 1) await waitSeen(i); // the consumer fetches before the measured ones start
  }
  await waitSeen(WARMUP + TXNS - 1);
  const visibleMs: number[] = [];
  for (let i = WARMUP; i < WARMUP + TXNS; i++) visibleMs.push(visibleAt.get(i)! - producedAt[i]!);
  await consumer.disconnect();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect();
  return { commit: latency(commitMs), step: latency(stepMs), visible: latency(visibleMs), busy: busy + concurrentRefusals };
}

async function kafkaFloors(brokers: string): Promise<{ defaults: KafkaFloor; fast: KafkaFloor }> {
  const kafka = new Kafka({
    clientId: 'twinlog-bench-floor',
    brokers: brokers.split(','),
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) => {
      const text = `${log.message} ${String(log['error'] ?? '')}`;
      if (!text.includes('another concurrent operation')) console.error(`kafkajs: ${text}`);
      else if (namespace === 'Connection') concurrentRefusals++; // one per refused request
    },
  });
  const run = Date.now();
  const defaults = await kafkaFloor(kafka, `bench-floor-${run}-a.`, {});
  const fast = await kafkaFloor(kafka, `bench-floor-${run}-b.`, { initialRetryTime: 5, multiplier: 1, retries: 1000 });
  return { defaults, fast };
}

// ---- the run ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const children = new Set<ChildProcess>();
  const budget = setTimeout(() => {
    console.error(`bench:floor: over the ${BUDGET_S} s budget, giving up`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(2); // test/kafkaBroker.ts kills a broker it started on exit
  }, BUDGET_S * 1000);
  budget.unref();
  console.log(`bench:floor — ${CORES} cores; no twinlog code`);

  console.log(`1. MQTT 3.1.1 over TLS, bare aedes answering each reported PATCH with a 204: ${DEVICES} devices, 1 PATCH every ${INTERVAL_MS} ms each, ${DURATION_S} s`);
  const m = await mqttFloor(children);
  const share = (ms: number): number => ms / (m.windowMs * CORES);
  const ackedPerS = m.stats.ack.n / DURATION_S;
  console.log(`  connect: ${m.stats.connected}/${DEVICES} in ${(m.stats.connectMs / 1000).toFixed(1)} s (TLS + CONNECT + SUBSCRIBE, 100 at a time), errors ${m.stats.errors}`);
  console.log(`  sent ${(m.stats.sent / DURATION_S).toFixed(0)}/s, acked ${ackedPerS.toFixed(0)}/s (204s received in the window / ${DURATION_S} s)`);
  console.log(`  ack (device PUBLISH → 204 received, in the device process): p50 ${fmt(m.stats.ack.p50)} ms, p99 ${fmt(m.stats.ack.p99)} ms over ${m.stats.ack.n}`);
  console.log(`  CPU over the window (process.cpuUsage, user + system, / ${CORES} cores × window): server ${(100 * share(m.serverCpuMs)).toFixed(1)} %, devices ${(100 * share(m.stats.cpuMs)).toFixed(1)} %, together ${(100 * share(m.serverCpuMs + m.stats.cpuMs)).toFixed(1)} %`);

  console.log(`2. Kafka transactions (kafkajs): transaction() → send 1 record → sendOffsets → commit(), ${TXNS} in a row after 10; a read_committed consumer, maxWait 10 ms`);
  let broker: KafkaBroker | undefined;
  let k: { defaults: KafkaFloor; fast: KafkaFloor };
  try {
    broker = await startKafkaBroker();
    console.log(`  broker ${broker.brokers} (${broker.source})`);
    k = await kafkaFloors(broker.brokers);
  } finally {
    await broker?.stop();
  }
  for (const [name, f] of [['kafkajs retry defaults (initialRetryTime 300 ms, as createKafkaLog)', k.defaults], ['producer retry every 5 ms (the floor)', k.fast]] as const) {
    console.log(`  ${name}:`);
    console.log(`    commit() alone (EndTxn): p50 ${fmt(f.commit.p50)} ms, p99 ${fmt(f.commit.p99)} ms over ${f.commit.n}`);
    console.log(`    transaction (transaction() → commit() returned): p50 ${fmt(f.step.p50)} ms, p99 ${fmt(f.step.p99)} ms; CONCURRENT_TRANSACTIONS answers (retried): ${f.busy}`);
    console.log(`    produce (before send) → seen by the read_committed consumer: p50 ${fmt(f.visible.p50)} ms, p99 ${fmt(f.visible.p99)} ms`);
  }
  console.log(
    `RESULT ${JSON.stringify({
      devices: m.stats.connected,
      mqtt_tls_ack_p50_ms: round1(m.stats.ack.p50),
      mqtt_tls_ack_p99_ms: round1(m.stats.ack.p99),
      mqtt_acked_per_s: Math.round(ackedPerS),
      mqtt_cpu_share: Math.round(share(m.serverCpuMs) * 1000) / 1000,
      kafka_txn_commit_p50_ms: round1(k.fast.step.p50),
      kafka_txn_commit_p99_ms: round1(k.fast.step.p99),
      kafka_visible_p50_ms: round1(k.fast.visible.p50),
      kafka_visible_p99_ms: round1(k.fast.visible.p99),
    })}`,
  );
}

if (process.argv.includes('--devices')) {
  await runDevices(Number(process.argv[process.argv.indexOf('--devices') + 1]), process.env['BENCH_CA'] ?? '');
} else {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    console.error('bench:floor failed:', e);
    process.exit(1);
  }
}
