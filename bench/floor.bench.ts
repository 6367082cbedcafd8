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
 *    (first retry after 300 ms, doubling; createKafkaLog's until 9806526), then every 5 ms — the
 *    broker answers the next transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until the
 *    previous one's markers are written, so the client's backoff is part of every back-to-back step.
 *    Measured: the transaction (`transaction()` → `commit()` returned; `commit()` alone is printed
 *    too) and produce (just before `send`) → the consumer's `eachMessage`, p50/p99. RESULT's kafka
 *    figures are the 5 ms variant's: the least an exactly-once projector step costs on this broker.
 * 3. Exactly-once pipeline floor, on the same broker: `runEosFloor` (bench/internal/eosFloor.ts,
 *    which bench:gateway runs too): consume-transform-produce at BENCH_PIPE_RATE (5,000) records/s
 *    with kafkajs and nothing else, fresh topics `in` and `out` of BENCH_PIPE_PARTITIONS (4), for
 *    BENCH_PIPE_DURATION_S (15) s, measured after a 3 s warm-up: made → received read_committed
 *    (p50/p99; every record once), outputs/s, CPU. Values: ~60-byte JSON, or padded to
 *    BENCH_PIPE_INPUT_BYTES; outputs a copy, or padded to BENCH_PIPE_OUTPUT_BYTES. Layout
 *    (BENCH_PIPE_LAYOUT): `split` (default) runs the transform in a child process and the producer
 *    and reader here; `serve` runs all three in one child process. `BENCH_ONLY=pipeline` runs this
 *    part alone.
 *
 * Bounded: connecting gives up after BENCH_CONNECT_S (120) s, the whole run after BENCH_BUDGET_S (300) s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { createSecureContext, createServer as createTlsServer } from 'node:tls';
import { Aedes, type PublishPacket } from 'aedes';
import type { Kafka, RetryOptions } from 'kafkajs';
import { createTestCa } from '../test/compat/support/testCa.ts';
import { connectDevice, connectFleet, fmt, latency, type Latency } from './support.ts';
import { isBusy, makeKafka, printEosFloor, refusals, resetRefusals, runEosFloor } from './internal/eosFloor.ts';
import { startKafkaBroker, type KafkaBroker } from '../test/kafkaBroker.ts';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DEVICES = env('BENCH_DEVICES', 5000);
const DURATION_S = env('BENCH_DURATION_S', 20);
const INTERVAL_MS = env('BENCH_INTERVAL_MS', 1000);
const TXNS = env('BENCH_TXNS', 200);
const CONNECT_S = env('BENCH_CONNECT_S', 120);
const BUDGET_S = env('BENCH_BUDGET_S', 300);
const PIPE_RATE = env('BENCH_PIPE_RATE', 5000);
const PIPE_DURATION_S = env('BENCH_PIPE_DURATION_S', 15);
const PIPE_PARTITIONS = env('BENCH_PIPE_PARTITIONS', 4);
const PIPE_WARMUP_S = 3;
const PIPE_INPUT_BYTES = env('BENCH_PIPE_INPUT_BYTES', 0); // 0: the ~60-byte JSON as made
const PIPE_OUTPUT_BYTES = env('BENCH_PIPE_OUTPUT_BYTES', 0); // 0: a copy of the input
const PIPE_LAYOUT = process.env['BENCH_PIPE_LAYOUT'] === 'serve' ? 'serve' : 'split';
const ONLY_PIPELINE = process.env['BENCH_ONLY'] === 'pipeline';
const CORES = availableParallelism();
const REPORTED = '$iothub/twin/PATCH/properties/reported/';

interface DeviceStats {
  readonly connected: number;
  readonly connectMs: number;
  readonly sent: number;
  readonly ack: Latency;
  readonly errors: number;
  readonly cpuMs: number;
}

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

  const connectOne = async (i: number): Promise<void> => {
    sockets[i] = await connectDevice({
      port,
      secureContext,
      connect: { clean: true, clientId: `floor-${i}`, keepalive: 600, username: 'floor', password: Buffer.from('x') },
      topics: ['$iothub/twin/res/#'],
      onPublish: (p) => {
        const now = performance.now();
        const id = new URLSearchParams(p.topic.slice(p.topic.indexOf('?') + 1)).get('$rid') ?? '';
        const at = pendingAt.get(id);
        pendingAt.delete(id);
        if (!p.topic.startsWith('$iothub/twin/res/204/')) errors++;
        else if (at !== undefined && measuring) ackMs.push(now - at);
      },
    });
  };

  const fleet = await connectFleet(DEVICES, 100, CONNECT_S * 1000, connectOne);
  const connected = fleet.connected;
  errors += fleet.failed;
  const connectMs = fleet.ms;

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

interface MqttFloor {
  readonly stats: DeviceStats;
  readonly serverCpuMs: number;
  readonly windowMs: number;
}

async function mqttFloor(children: Set<ChildProcess>): Promise<MqttFloor> {
  const tls = createTestCa({ key: 'ec' });
  const broker = new Aedes({
    authorizePublish(client, packet, done) {
      if (client !== null && packet.topic.startsWith(REPORTED)) {
        const rid = packet.topic.slice(packet.topic.indexOf('$rid=') + 5);
        const ack: PublishPacket = {
          cmd: 'publish',
          topic: `$iothub/twin/res/204/?$rid=${rid}&$version=1`,
          payload: Buffer.alloc(0),
          qos: 0,
          retain: false,
          dup: false,
        };
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
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', import.meta.filename, '--devices', String(port)],
    {
      env: { ...process.env, BENCH_CA: tls.ca },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  let window: Promise<{ cpu: number; ms: number }> | undefined;
  const stats = await new Promise<DeviceStats>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('READY ')) {
        console.log(`  connected ${line.slice(6)}/${DEVICES} devices in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        window = sleep(DURATION_S * 1000).then(() => ({ cpu: cpuMs(cpu0), ms: performance.now() - t0 }));
      } else if (line.startsWith('STATS ')) resolve(JSON.parse(line.slice(6)) as DeviceStats);
    });
    child.once('exit', (code) =>
      reject(new Error(`the device process exited with ${String(code)} before its figures`)),
    );
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

/** TXNS transactions in a row on a fresh topic, with the producer's `retry`. */
async function kafkaFloor(kafka: Kafka, prefix: string, retry: RetryOptions): Promise<KafkaFloor> {
  const topic = `${prefix}t`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  const producer = kafka.producer({ transactionalId: `${prefix}tx`, idempotent: true, maxInFlightRequests: 1, retry });
  await producer.connect();
  const consumer = kafka.consumer({
    groupId: `${prefix}reader`,
    minBytes: 1,
    maxWaitTimeInMs: 10,
    readUncommitted: false,
  });
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
    if (i === WARMUP) {
      busy = 0;
      resetRefusals();
    }
    const t0 = performance.now();
    const tx = await producer.transaction();
    producedAt[i] = performance.now();
    await tx.send({ topic, acks: -1, messages: [{ key: 'device', value: String(i) }] });
    for (;;) {
      try {
        await tx.sendOffsets({
          consumerGroupId: `${prefix}projector`,
          topics: [{ topic, partitions: [{ partition: 0, offset: String(i + 1) }] }],
        });
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
  return { commit: latency(commitMs), step: latency(stepMs), visible: latency(visibleMs), busy: busy + refusals() };
}

async function kafkaFloors(kafka: Kafka): Promise<{ defaults: KafkaFloor; fast: KafkaFloor }> {
  const run = Date.now();
  const defaults = await kafkaFloor(kafka, `bench-floor-${run}-a.`, {});
  const fast = await kafkaFloor(kafka, `bench-floor-${run}-b.`, { initialRetryTime: 5, multiplier: 1, retries: 1000 });
  return { defaults, fast };
}

// ---- the run ----------------------------------------------------------------------------------------

function printMqtt(m: MqttFloor): Record<string, number> {
  const share = (ms: number): number => ms / (m.windowMs * CORES);
  const ackedPerS = m.stats.ack.n / DURATION_S;
  console.log(
    `  connect: ${m.stats.connected}/${DEVICES} in ${(m.stats.connectMs / 1000).toFixed(1)} s (TLS + CONNECT + SUBSCRIBE, 100 at a time), errors ${m.stats.errors}`,
  );
  console.log(
    `  sent ${(m.stats.sent / DURATION_S).toFixed(0)}/s, acked ${ackedPerS.toFixed(0)}/s (204s received in the window / ${DURATION_S} s)`,
  );
  console.log(
    `  ack (device PUBLISH → 204 received, in the device process): p50 ${fmt(m.stats.ack.p50)} ms, p99 ${fmt(m.stats.ack.p99)} ms over ${m.stats.ack.n}`,
  );
  console.log(
    `  CPU over the window (process.cpuUsage, user + system, / ${CORES} cores × window): server ${(100 * share(m.serverCpuMs)).toFixed(1)} %, devices ${(100 * share(m.stats.cpuMs)).toFixed(1)} %, together ${(100 * share(m.serverCpuMs + m.stats.cpuMs)).toFixed(1)} %`,
  );
  return {
    devices: m.stats.connected,
    mqtt_tls_ack_p50_ms: round1(m.stats.ack.p50),
    mqtt_tls_ack_p99_ms: round1(m.stats.ack.p99),
    mqtt_acked_per_s: Math.round(ackedPerS),
    mqtt_cpu_share: Math.round(share(m.serverCpuMs) * 1000) / 1000,
  };
}

function printKafka(k: { defaults: KafkaFloor; fast: KafkaFloor }): Record<string, number> {
  for (const [name, f] of [
    ['kafkajs retry defaults (initialRetryTime 300 ms)', k.defaults],
    ['producer retry every 5 ms (the floor)', k.fast],
  ] as const) {
    console.log(`  ${name}:`);
    console.log(
      `    commit() alone (EndTxn): p50 ${fmt(f.commit.p50)} ms, p99 ${fmt(f.commit.p99)} ms over ${f.commit.n}`,
    );
    console.log(
      `    transaction (transaction() → commit() returned): p50 ${fmt(f.step.p50)} ms, p99 ${fmt(f.step.p99)} ms; CONCURRENT_TRANSACTIONS answers (retried): ${f.busy}`,
    );
    console.log(
      `    produce (before send) → seen by the read_committed consumer: p50 ${fmt(f.visible.p50)} ms, p99 ${fmt(f.visible.p99)} ms`,
    );
  }
  return {
    kafka_txn_commit_p50_ms: round1(k.fast.step.p50),
    kafka_txn_commit_p99_ms: round1(k.fast.step.p99),
    kafka_visible_p50_ms: round1(k.fast.visible.p50),
    kafka_visible_p99_ms: round1(k.fast.visible.p99),
  };
}

async function main(): Promise<void> {
  const children = new Set<ChildProcess>();
  const budget = setTimeout(() => {
    console.error(`bench:floor: over the ${BUDGET_S} s budget, giving up`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(2); // test/kafkaBroker.ts kills a broker it started on exit
  }, BUDGET_S * 1000);
  budget.unref();
  console.log(`bench:floor — ${CORES} cores; no twinlog code`);
  let result: Record<string, number> = {};

  if (!ONLY_PIPELINE) {
    console.log(
      `1. MQTT 3.1.1 over TLS, bare aedes answering each reported PATCH with a 204: ${DEVICES} devices, 1 PATCH every ${INTERVAL_MS} ms each, ${DURATION_S} s`,
    );
    result = { ...result, ...printMqtt(await mqttFloor(children)) };
  }
  let broker: KafkaBroker | undefined;
  try {
    broker = await startKafkaBroker();
    console.log(`Kafka broker ${broker.brokers} (${broker.source})`);
    const kafka = makeKafka(broker.brokers);
    if (!ONLY_PIPELINE) {
      console.log(
        `2. Kafka transactions (kafkajs): transaction() → send 1 record → sendOffsets → commit(), ${TXNS} in a row after 10; a read_committed consumer, maxWait 10 ms`,
      );
      result = { ...result, ...printKafka(await kafkaFloors(kafka)) };
    }
    console.log(
      `3. exactly-once pipeline (kafkajs): ${PIPE_RATE} records/s for ${PIPE_DURATION_S} s (window after ${PIPE_WARMUP_S} s), ${PIPE_PARTITIONS} partitions; ` +
        `${PIPE_LAYOUT === 'split' ? 'transform in a child process' : 'producer, transform and reader in one child process'}: read_committed group, per partition transaction() → send → sendOffsets → commit()`,
    );
    const floor = await runEosFloor(
      {
        brokers: broker.brokers,
        rate: PIPE_RATE,
        durationS: PIPE_DURATION_S,
        warmupS: PIPE_WARMUP_S,
        partitions: PIPE_PARTITIONS,
        keys: 5000,
        inputBytes: PIPE_INPUT_BYTES,
        outputBytes: PIPE_OUTPUT_BYTES,
        layout: PIPE_LAYOUT,
      },
      children,
    );
    const p = printEosFloor(floor, CORES);
    result = { ...result, eos_pipeline_per_s: p.per_s, eos_pipeline_p50_ms: p.p50_ms, eos_pipeline_p99_ms: p.p99_ms };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await broker?.stop();
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
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
