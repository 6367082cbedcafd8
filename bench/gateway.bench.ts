/**
 * bench:gateway — the MQTT gateway under a fleet: BENCH_DEVICES (5,000) simulated devices connected
 * at once over TLS (loopback), each sending one reported PATCH per second (BENCH_INTERVAL_MS), while the back end
 * changes the desired properties of random devices (BENCH_DESIRED_PER_S, 100/s), all through the
 * log and the projector.
 *
 * Log: Kafka (`KAFKA_BROKERS`, else `startKafkaBroker()` as the tests do) with a fresh topic prefix
 * and BENCH_PARTITIONS (4) partitions, consumers' fetch maxWait BENCH_KAFKA_MAX_WAIT_MS (250, the
 * adapter's default); `BENCH_LOG=embedded` runs on a fresh SQLite file instead.
 *
 * Processes: this one runs the projector (`BENCH_PROJECTOR=process`: in a process of its own,
 * test/support/projectorProcess.ts), the gateway (`createMqttGateway`, ECDSA P-256 certificate
 * from a CA made with the `openssl` CLI) and the back end's desired writes (`client.mergeDesired`,
 * unconditional, each carrying its send time); a child process (this file with `--devices`) runs
 * the devices, each a TLS socket speaking MQTT 3.1.1 through `mqtt-packet` (the framing aedes
 * uses): CONNECT with a device SAS token, SUBSCRIBE to `$iothub/twin/res/#` and desired
 * notifications, then every second at its own phase a reported PATCH `{"temp":…,"seq":…}`.
 *
 * Measured in the child, over BENCH_DURATION_S (20) seconds after every device is connected:
 * - reported ack: from the PUBLISH of a PATCH to its `$iothub/twin/res/204` (the projector applied
 *   it), p50/p99 over every ack in the window; `reported_per_s` = acks in the window / its length;
 * - desired → notification: from the back end's `mergeDesired` call (time in the value) to the
 *   device receiving `$iothub/twin/PATCH/properties/desired`, p50/p99.
 * Baseline in the same run: the same devices' MQTT round trip for a GET of a twin (read path, no
 * write), over a 2 s window before the load (p50/p99). Targets (issue #4): reported ack p99 ≤ 50 ms
 * and desired p99 ≤ 100 ms at ≥ 5,000 reports/s; printed as met or MISSED. Bounded: connecting
 * gives up after BENCH_CONNECT_S (120) seconds, the whole run after BENCH_BUDGET_S (300).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createSecureContext } from 'node:tls';
import { createTwinClient } from '@twinlog/client';
import type { Log } from '@twinlog/core';
import { createDeviceKeyStore, createMqttGateway, signDeviceSas } from '@twinlog/gateway';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createKafkaLog } from '@twinlog/log-kafka';
import { ensureTwinTopics, startProjector } from '@twinlog/projector';
import { connectDevice, connectFleet, fmt, latency, makeCa, type Latency } from './support.ts';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { targetEnv } from '../test/support/openLog.ts';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DEVICES = env('BENCH_DEVICES', 5000);
const DURATION_S = env('BENCH_DURATION_S', 20);
const DESIRED_PER_S = env('BENCH_DESIRED_PER_S', 100);
const INTERVAL_MS = env('BENCH_INTERVAL_MS', 1000);
const KAFKA_MAX_WAIT_MS = env('BENCH_KAFKA_MAX_WAIT_MS', 250);
const PROJECTOR_PROCESS = process.env['BENCH_PROJECTOR'] === 'process';
const PARTITIONS = env('BENCH_PARTITIONS', 4);
const CONNECT_S = env('BENCH_CONNECT_S', 120);
const BUDGET_S = env('BENCH_BUDGET_S', 300);
const KEY = Buffer.alloc(32, 42).toString('base64');
const HUB = 'localhost';

interface DeviceStats {
  readonly connected: number;
  readonly connectMs: number;
  readonly get: Latency;
  readonly ack: Latency;
  readonly desired: Latency;
  readonly sent: number;
  readonly errors: number;
}


// ---- the device fleet (child process) ------------------------------------------------------------

async function runDevices(port: number, ca: string): Promise<void> {
  const stats = { getMs: [] as number[], ackMs: [] as number[], desiredMs: [] as number[], sent: 0, errors: 0 };
  let measuring: 'no' | 'get' | 'load' = 'no';
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sockets: ((topic: string, payload: Buffer) => void)[] = [];
  const pendingAt = new Map<string, number>();
  let rid = 0;
  const secureContext = createSecureContext({ ca }); // one for every socket (parsing the CA per connect costs more than the handshake)

  const connectOne = async (i: number): Promise<void> => {
    const deviceId = `bench-${i}`;
    sockets[i] = await connectDevice({
      port,
      secureContext,
      connect: {
        clean: false, clientId: deviceId, keepalive: 600,
        username: `${HUB}/${deviceId}/?api-version=2021-04-12`, password: Buffer.from(signDeviceSas(HUB, deviceId, KEY, expiry)),
      },
      topics: ['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#'],
      onPublish: (p) => {
        const now = performance.timeOrigin + performance.now();
        if (p.topic.startsWith('$iothub/twin/res/')) {
          const q = new URLSearchParams(p.topic.slice(p.topic.indexOf('?') + 1));
          const id = q.get('$rid') ?? '';
          const at = pendingAt.get(id);
          pendingAt.delete(id);
          if (!p.topic.startsWith('$iothub/twin/res/2')) stats.errors++;
          else if (at !== undefined && id.startsWith('g') && measuring === 'get') stats.getMs.push(now - at);
          else if (at !== undefined && id.startsWith('r') && measuring === 'load') stats.ackMs.push(now - at);
        } else if (p.topic.startsWith('$iothub/twin/PATCH/properties/desired/') && measuring === 'load') {
          const body = JSON.parse(Buffer.from(p.payload).toString()) as { bench?: { t?: number } };
          if (typeof body.bench?.t === 'number') stats.desiredMs.push(now - body.bench.t);
        }
      },
    });
  };

  const fleet = await connectFleet(DEVICES, 100, CONNECT_S * 1000, connectOne); // 100 TLS handshakes in flight
  const connected = fleet.connected;
  stats.errors += fleet.failed;
  const connectMs = fleet.ms;
  const now = (): number => performance.timeOrigin + performance.now();
  const send = (i: number, topic: string, payload: string, prefix: string): void => {
    const s = sockets[i];
    if (s === undefined) return;
    const id = `${prefix}${rid++}`;
    pendingAt.set(id, now());
    s(`${topic}?$rid=${id}`, Buffer.from(payload));
  };

  // baseline: a GET round trip per device, spread over 2 s
  measuring = 'get';
  for (let i = 0; i < DEVICES; i++) setTimeout(() => send(i, '$iothub/twin/GET/', ' ', 'g'), (i / DEVICES) * 2000);
  await new Promise((r) => setTimeout(r, 3000));

  process.stdout.write(`READY ${connected}\n`);
  measuring = 'load';
  const timers: NodeJS.Timeout[] = [];
  let seq = 0;
  for (let i = 0; i < DEVICES; i++) {
    const phase = (i / DEVICES) * INTERVAL_MS;
    timers.push(
      setTimeout(() => {
        const tick = (): void => {
          stats.sent++;
          send(i, '$iothub/twin/PATCH/properties/reported/', JSON.stringify({ temp: 20 + (seq % 10), seq: seq++ }), 'r');
        };
        tick();
        timers.push(setInterval(tick, INTERVAL_MS));
      }, phase),
    );
  }
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  measuring = 'no';
  for (const t of timers) clearInterval(t);
  const result: DeviceStats = {
    connected,
    connectMs,
    get: latency(stats.getMs),
    ack: latency(stats.ackMs),
    desired: latency(stats.desiredMs),
    sent: stats.sent,
    errors: stats.errors,
  };
  process.stdout.write(`STATS ${JSON.stringify(result)}\n`, () => process.exit(0));
}

// ---- the hub (this process) -----------------------------------------------------------------------

async function main(): Promise<void> {
  const budget = setTimeout(() => {
    console.error(`bench:gateway: over the ${BUDGET_S} s budget, giving up`);
    process.exit(2);
  }, BUDGET_S * 1000);
  budget.unref();
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-gateway-'));
  const tls = makeCa(dir);
  const kind = process.env['BENCH_LOG'] === 'embedded' ? 'embedded' : 'kafka';
  let stopBroker = async (): Promise<void> => {};
  let log: Log;
  const prefix = `bench-gw-${Date.now()}.`;
  const dbPath = join(dir, 'log.db');
  let brokers = '';
  if (kind === 'kafka') {
    const broker = await startKafkaBroker();
    stopBroker = () => broker.stop();
    brokers = broker.brokers;
    log = createKafkaLog({ brokers: brokers.split(','), topicPrefix: prefix, maxWaitTimeInMs: KAFKA_MAX_WAIT_MS });
  } else {
    log = createEmbeddedLog({ path: dbPath });
  }
  await ensureTwinTopics(log, PARTITIONS);
  const stopProjector = await (async (): Promise<() => Promise<void>> => {
    if (!PROJECTOR_PROCESS) {
      const projector = await startProjector({ log, physicalNow: Date.now });
      return () => projector.stop();
    }
    // the projector in a process of its own (test/support/projectorProcess.ts), as deployed
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'test', 'support', 'projectorProcess.ts')], {
      env: { ...process.env, ...targetEnv(kind === 'kafka' ? { kind, where: prefix } : { kind, where: dbPath }), KAFKA_BROKERS: brokers },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        if (line.includes('"ready"')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`the projector process exited with ${String(code)}`)));
    });
    return () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
  })();
  const backend = createTwinClient({ log, physicalNow: Date.now, actor: 'bench', decisionTimeoutMs: 120_000 });
  const keys = createDeviceKeyStore();
  console.log(`bench:gateway — ${DEVICES} devices over TLS, 1 reported PATCH every ${INTERVAL_MS} ms each, ${DESIRED_PER_S} desired changes/s, ${DURATION_S} s, ${kind} log (${PARTITIONS} partitions${kind === 'kafka' ? `, consumer maxWait ${KAFKA_MAX_WAIT_MS} ms` : ''}), projector ${PROJECTOR_PROCESS ? 'in its own process' : 'in this process'}`);
  let t = Date.now();
  for (let i = 0; i < DEVICES; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, DEVICES - i) }, (_, j) => {
        keys.set(`bench-${i + j}`, { primaryKey: KEY, secondaryKey: KEY, generationId: '1' });
        return backend.createDevice(`bench-${i + j}`, { wait: true });
      }),
    );
  }
  console.log(`  created ${DEVICES} twins in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const gateway = createMqttGateway({ log, hubName: HUB, physicalNow: Date.now, deviceKeys: keys, decisionTimeoutMs: 30_000 });
  const server = await gateway.listen({ port: 0, host: '127.0.0.1', tls: { key: tls.key, cert: tls.cert } });

  t = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--devices', String(server.port)], {
    env: { ...process.env, BENCH_CA: tls.ca },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stats: DeviceStats | undefined;
  let desiredSent = 0;
  const lines = createInterface({ input: child.stdout! });
  const loadDone = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) {
        console.log(`  connected ${line.slice(6)} devices in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        // the back end: desired changes of random devices, each carrying its send time
        const every = 1000 / DESIRED_PER_S;
        const start = Date.now();
        const timer = setInterval(() => {
          if (Date.now() - start > DURATION_S * 1000 - 500) return clearInterval(timer);
          const id = `bench-${Math.floor(Math.random() * DEVICES)}`;
          desiredSent++;
          void backend.mergeDesired(id, { bench: { t: performance.timeOrigin + performance.now(), n: desiredSent } });
        }, every);
      } else if (line.startsWith('STATS ')) {
        stats = JSON.parse(line.slice(6)) as DeviceStats;
        resolve();
      }
    });
    child.once('exit', () => resolve());
  });
  await loadDone;

  await gateway.close();
  await server.close();
  await backend.close();
  await stopProjector();
  await log.close();
  await stopBroker();
  rmSync(dir, { recursive: true, force: true });
  if (stats === undefined) throw new Error('the device process ended without figures');

  const reportedPerS = stats.ack.n / DURATION_S;
  const ackP99 = stats.ack.p99 ?? Number.NaN; // NaN travels as null in JSON
  const desiredP99 = stats.desired.p99 ?? Number.NaN;
  console.log(`  connect: ${stats.connected}/${DEVICES} devices in ${(stats.connectMs / 1000).toFixed(1)} s (TLS + SAS + SUBSCRIBE, 100 at a time)`);
  console.log(`  baseline GET round trip (no load): p50 ${fmt(stats.get.p50)} ms, p99 ${fmt(stats.get.p99)} ms over ${stats.get.n}`);
  console.log(`  reported PATCH: sent ${(stats.sent / DURATION_S).toFixed(0)}/s, acked ${reportedPerS.toFixed(0)}/s (${((100 * stats.ack.n) / Math.max(1, stats.sent)).toFixed(1)} % in the window)`);
  console.log(`  reported ack (PUBLISH → 204 after the projector): p50 ${fmt(stats.ack.p50)} ms, p99 ${fmt(ackP99)} ms — ratio to the GET baseline p50 ${fmt((stats.ack.p50 ?? Number.NaN) / (stats.get.p50 ?? Number.NaN))}`);
  console.log(`  desired → notification: ${stats.desired.n} of ${desiredSent} received in the window, p50 ${fmt(stats.desired.p50)} ms, p99 ${fmt(desiredP99)} ms`);
  console.log(`  errors (refused connects, non-2xx responses): ${stats.errors}`);
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log(`  targets: ≥ 5,000 devices ${met(stats.connected >= 5000)}; ≥ 5,000 reports/s ${met(reportedPerS >= 5000)}; ack p99 ≤ 50 ms ${met(ackP99 <= 50)}; desired p99 ≤ 100 ms ${met(desiredP99 <= 100)}`);
  console.log(
    `RESULT ${JSON.stringify({
      devices: stats.connected,
      reported_per_s: Math.round(reportedPerS),
      reported_ack_p99_ms: Math.round(ackP99 * 10) / 10,
      desired_notify_p99_ms: Math.round(desiredP99 * 10) / 10,
    })}`,
  );
}

if (process.argv.includes('--devices')) {
  const port = Number(process.argv[process.argv.indexOf('--devices') + 1]);
  await runDevices(port, process.env['BENCH_CA'] ?? '');
} else {
  await main();
  process.exit(0);
}
