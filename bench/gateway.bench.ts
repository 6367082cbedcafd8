/**
 * bench:gateway — devices over MQTT/TLS against `twinlog serve`, and in the same run the bare
 * exactly-once floor (bench/internal/eosFloor.ts, bench:floor's part 3) with twinlog's record sizes
 * and process layout, so that the two latencies are compared on the same machine in the same minutes.
 *
 * 1. twinlog. `twinlog serve` in a process of its own (the repository's bin, as deployed: projector,
 *    reconciler, read model, REST gateway and MQTT gateway in one process), on Kafka
 *    (`KAFKA_BROKERS`, else `startKafkaBroker()`) with a fresh topic prefix and BENCH_PARTITIONS (4)
 *    partitions, or `BENCH_LOG=embedded` on a fresh data folder; TLS for both gateways with an
 *    ECDSA P-256 certificate from a CA made with `openssl`; the iothubowner policy key given in
 *    TWINLOG_POLICY_KEY; `BENCH_PROJECTOR_WORKERS` passes `--projector-workers`, `BENCH_KAFKA_CLIENT` `--kafka-client`. This process is the
 *    back end, over HTTPS with a service SAS token only: it creates BENCH_DEVICES (5,000) devices
 *    (`PUT /devices/{id}` with their keys, 200 in flight), and during the load changes the desired
 *    properties of random devices (BENCH_DESIRED_PER_S, 100/s) with `PATCH /twins/{id}`
 *    `{"properties":{"desired":{"bench":{"t":…}}}}`, `t` the time the request was issued. A child
 *    process (this file with `--devices`) runs the devices, each a TLS socket speaking MQTT 3.1.1
 *    through `mqtt-packet`: CONNECT with a device SAS token, SUBSCRIBE to `$iothub/twin/res/#` and
 *    the desired notifications, a baseline GET round trip each over 2 s, then every
 *    BENCH_INTERVAL_MS (1000) at its own phase a reported PATCH `{"temp":…,"seq":…}` for
 *    BENCH_DURATION_S (20); then a drain of up to BENCH_DRAIN_S (15) s for the answers still due.
 *    Measured in the child: reported ack (PUBLISH → `$iothub/twin/res/204`, every report sent in the
 *    window, answered in the window or the drain), desired → notification (REST call issued →
 *    `$iothub/twin/PATCH/properties/desired` received), reports sent and acked, non-2xx answers and
 *    reports never answered. "All acked at the offered rate": every report of the window answered
 *    2xx, and acks received in the window ≥ 99 % of the offered rate (devices / interval).
 * 2. Output sizes. After serve stops, the last ≤ 300 records of partition 0 of `twin.device`,
 *    `twin.changes` and `twin.snapshots` are read through the `Log` port; their mean size (key +
 *    value + header names and values) gives the floor's input size (a device's reported event) and
 *    output size (one change record + one snapshot: twinlog writes both per reported event when a
 *    batch touches each device once, as at 5,000 devices and one report per device per second).
 * 3. The floor (Kafka only): `runEosFloor` at the offered rate, keys over the same device count,
 *    input and output values of the sizes of (2), in the `serve` layout (producer, transform and
 *    reader in one child process, as serve holds the gateway and the projector), for
 *    BENCH_DURATION_S after a 3 s warm-up, on the same broker. `floor_p99_ms`: made → received
 *    read_committed, p99. `BENCH_FLOOR=0` skips it.
 *
 * Last line: RESULT with the ratios of twinlog's p99s to the floor's (issue #13 item 3: ≤ 2).
 * Bounded: connecting gives up after BENCH_CONNECT_S (120) s, the whole run after BENCH_BUDGET_S (600).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createSecureContext } from 'node:tls';
import type { Log } from '@twinlog/core';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createKafkaLog } from '@twinlog/log-kafka';
import { printEosFloor, runEosFloor } from './internal/eosFloor.ts';
import { createTestCa } from '../test/compat/support/testCa.ts';
import { connectDevice, connectFleet, fmt, latency, type Latency } from './support.ts';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { cleanEnv, startServe } from '../test/support/serveProcess.ts';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DEVICES = env('BENCH_DEVICES', 5000);
const DURATION_S = env('BENCH_DURATION_S', 20);
const DRAIN_S = env('BENCH_DRAIN_S', 15);
const DESIRED_PER_S = env('BENCH_DESIRED_PER_S', 100);
const INTERVAL_MS = env('BENCH_INTERVAL_MS', 1000);
const PARTITIONS = env('BENCH_PARTITIONS', 4);
const PROJECTOR_WORKERS = process.env['BENCH_PROJECTOR_WORKERS'];
const KAFKA_CLIENT = process.env['BENCH_KAFKA_CLIENT'];
const CONNECT_S = env('BENCH_CONNECT_S', 120);
const BUDGET_S = env('BENCH_BUDGET_S', 600);
const FLOOR = process.env['BENCH_FLOOR'] !== '0';
const FLOOR_WARMUP_S = 3;
const KEY = Buffer.alloc(32, 42).toString('base64');
const POLICY_KEY = Buffer.alloc(32, 7).toString('base64');
const HUB = 'localhost';
const API = 'api-version=2021-04-12';
const CORES = availableParallelism();

interface DeviceStats {
  readonly connected: number;
  readonly connectMs: number;
  readonly get: Latency;
  readonly ack: Latency;
  readonly desired: Latency;
  readonly sent: number;
  /** Acks received while the window was open (for the rate). */
  readonly ackedInWindow: number;
  /** Reports of the window never answered by the end of the drain. */
  readonly unanswered: number;
  readonly errors: number;
  /** Non-2xx answers by status. */
  readonly statuses: Record<string, number>;
}

// ---- the device fleet (child process) ------------------------------------------------------------

async function runDevices(port: number, ca: string): Promise<void> {
  const stats = {
    getMs: [] as number[],
    ackMs: [] as number[],
    desiredMs: [] as number[],
    sent: 0,
    ackedInWindow: 0,
    errors: 0,
  };
  let measuring: 'no' | 'get' | 'load' | 'drain' = 'no';
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sockets: ((topic: string, payload: Buffer) => void)[] = [];
  const pendingAt = new Map<string, number>();
  const statuses: Record<string, number> = {};
  let rid = 0;
  const secureContext = createSecureContext({ ca }); // one for every socket (parsing the CA per connect costs more than the handshake)

  const connectOne = async (i: number): Promise<void> => {
    const deviceId = `bench-${i}`;
    sockets[i] = await connectDevice({
      port,
      secureContext,
      connect: {
        clean: false,
        clientId: deviceId,
        keepalive: 600,
        username: `${HUB}/${deviceId}/?api-version=2021-04-12`,
        password: Buffer.from(signDeviceSas(HUB, deviceId, KEY, expiry)),
      },
      topics: ['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#'],
      onPublish: (p) => {
        const now = performance.timeOrigin + performance.now();
        if (p.topic.startsWith('$iothub/twin/res/')) {
          const q = new URLSearchParams(p.topic.slice(p.topic.indexOf('?') + 1));
          const id = q.get('$rid') ?? '';
          const at = pendingAt.get(id);
          pendingAt.delete(id);
          if (!p.topic.startsWith('$iothub/twin/res/2')) {
            stats.errors++;
            const status = p.topic.slice('$iothub/twin/res/'.length).split('/')[0] ?? '?';
            statuses[status] = (statuses[status] ?? 0) + 1;
          } else if (at !== undefined && id.startsWith('g') && measuring === 'get') stats.getMs.push(now - at);
          else if (at !== undefined && id.startsWith('r')) {
            stats.ackMs.push(now - at); // every report of the window, answered in the window or the drain
            if (measuring === 'load') stats.ackedInWindow++;
          }
        } else if (p.topic.startsWith('$iothub/twin/PATCH/properties/desired/') && measuring !== 'get') {
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
          send(
            i,
            '$iothub/twin/PATCH/properties/reported/',
            JSON.stringify({ temp: 20 + (seq % 10), seq: seq++ }),
            'r',
          );
        };
        tick();
        timers.push(setInterval(tick, INTERVAL_MS));
      }, phase),
    );
  }
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  measuring = 'drain';
  for (const t of timers) clearInterval(t);
  const unanswered = (): number => [...pendingAt.keys()].filter((k) => k.startsWith('r')).length;
  for (const deadline = Date.now() + DRAIN_S * 1000; unanswered() > 0 && Date.now() < deadline;)
    await new Promise((r) => setTimeout(r, 50));
  measuring = 'no';
  const result: DeviceStats = {
    connected,
    connectMs,
    get: latency(stats.getMs),
    ack: latency(stats.ackMs),
    desired: latency(stats.desiredMs),
    sent: stats.sent,
    ackedInWindow: stats.ackedInWindow,
    unanswered: unanswered(),
    errors: stats.errors,
    statuses,
  };
  process.stdout.write(`STATS ${JSON.stringify(result)}\n`, () => process.exit(0));
}

// ---- the back end (this process) --------------------------------------------------------------

interface Rest {
  call(method: string, path: string, body: unknown): Promise<number>;
  close(): void;
}

/** HTTPS calls to serve's REST gateway with a hub-wide service SAS token, as a back end makes them. */
function restClient(port: number, ca: string): Rest {
  const agent = new Agent({ keepAlive: true, maxSockets: 256, ca });
  const token = signServiceSas(HUB, 'iothubowner', POLICY_KEY, Math.floor(Date.now() / 1000) + 3600);
  return {
    call: (method, path, body) =>
      new Promise((resolve, reject) => {
        const payload = Buffer.from(JSON.stringify(body));
        const req = request(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port,
            method,
            path: `${path}?${API}`,
            agent,
            headers: { authorization: token, 'content-type': 'application/json', 'content-length': payload.length },
          },
          (res) => {
            res.resume();
            res.once('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.once('error', reject);
        req.end(payload);
      }),
    close: () => agent.destroy(),
  };
}

/** Mean bytes (key + value + header names and values) of the last ≤ `n` records of partition 0 of `topic`. */
async function meanRecordBytes(log: Log, topic: string, n = 300): Promise<{ bytes: number; sampled: number }> {
  const end = (await log.endOffsets(topic))[0] ?? 0;
  let bytes = 0;
  let sampled = 0;
  for await (const batch of log.read(topic, 0, { from: Math.max(0, end - n), to: end })) {
    for (const r of batch) {
      bytes += Buffer.byteLength(r.key) + (r.value?.byteLength ?? 0);
      for (const [k, v] of Object.entries(r.headers)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
      sampled++;
    }
  }
  return { bytes: sampled === 0 ? Number.NaN : bytes / sampled, sampled };
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const children = new Set<ChildProcess>(); // killed when the run fails or runs over its budget

async function main(): Promise<void> {
  const budget = setTimeout(() => {
    console.error(`bench:gateway: over the ${BUDGET_S} s budget, giving up`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(2);
  }, BUDGET_S * 1000);
  budget.unref();
  const load0 = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-gateway-'));
  const tls = createTestCa({ key: 'ec' });
  writeFileSync(join(dir, 'server.pem'), tls.cert);
  writeFileSync(join(dir, 'server.key'), tls.key);
  const kind = process.env['BENCH_LOG'] === 'embedded' ? 'embedded' : 'kafka';
  const prefix = `bench-gw-${Date.now()}.`;
  const data = join(dir, 'data');
  let stopBroker = async (): Promise<void> => {};
  let brokers = '';
  if (kind === 'kafka') {
    const broker = await startKafkaBroker();
    stopBroker = () => broker.stop();
    brokers = broker.brokers;
  }
  const offered = (DEVICES * 1000) / INTERVAL_MS;
  console.log(
    `bench:gateway — ${CORES} cores, load average ${load0} at start; ${DEVICES} devices over TLS, 1 reported PATCH every ${INTERVAL_MS} ms each (${offered.toFixed(0)}/s offered), ` +
      `${DESIRED_PER_S} desired PATCH /twins/{id}/s over HTTPS, ${DURATION_S} s, ${kind} log (${PARTITIONS} partitions${kind === 'kafka' ? `, client ${KAFKA_CLIENT ?? "serve's default"}` : ''}), twinlog serve in its own process`,
  );
  const served = await startServe(
    [
      ...(kind === 'kafka' ? ['--kafka', brokers, '--topic-prefix', prefix] : []),
      '--data',
      data,
      '--partitions',
      String(PARTITIONS),
      '--mqtt-port',
      '0',
      '--hub-name',
      HUB,
      '--tls-cert',
      join(dir, 'server.pem'),
      '--tls-key',
      join(dir, 'server.key'),
      '--log-level',
      'info',
      ...(PROJECTOR_WORKERS === undefined ? [] : ['--projector-workers', PROJECTOR_WORKERS]),
      ...(KAFKA_CLIENT === undefined || kind !== 'kafka' ? [] : ['--kafka-client', KAFKA_CLIENT]),
    ],
    cleanEnv({ TWINLOG_POLICY_KEY: POLICY_KEY }),
  );
  children.add(served.child);
  const rest = restClient(served.gatewayPort, tls.ca);
  let t = Date.now();
  const createErrors: Record<string, number> = {};
  let createThrottled = 0;
  let createRetries = 0;
  for (let next = 0; next < DEVICES;) {
    const chunk = Array.from({ length: Math.min(200, DEVICES - next) }, (_, j) => next + j);
    next += chunk.length;
    const codes = await Promise.all(
      chunk.map(async (i) => {
        const body = {
          deviceId: `bench-${i}`,
          authentication: { type: 'sas', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
        };
        for (let attempt = 1; ; attempt++) {
          try {
            const code = await rest.call('PUT', `/devices/bench-${i}`, body);
            if (code === 429) {
              // the REST admission limit per policy answered 429 ThrottlingException: back off and try again, as the SDKs do
              createThrottled++;
              attempt--;
              await new Promise((r) => setTimeout(r, 250 + Math.random() * 250));
              continue;
            }
            return attempt > 1 && code === 409 ? 200 : code; // a retried create that had landed
          } catch (e) {
            if (attempt >= 5) throw e; // a keep-alive socket closed under the request: again on a fresh one
            createRetries++;
          }
        }
      }),
    );
    for (const c of codes) if (c < 200 || c >= 300) createErrors[c] = (createErrors[c] ?? 0) + 1;
    if (next % 1000 === 0) console.log(`  … ${next} devices created, ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  console.log(
    `  created ${DEVICES} devices with PUT /devices/{id} in ${((Date.now() - t) / 1000).toFixed(1)} s (non-2xx by status ${JSON.stringify(createErrors)}, ${createThrottled} answered 429 and sent again, ${createRetries} requests retried after a closed socket)`,
  );

  t = Date.now();
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', import.meta.filename, '--devices', String(served.mqttPort)],
    {
      env: { ...process.env, BENCH_CA: tls.ca },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  let stats: DeviceStats | undefined;
  let desiredSent = 0;
  const desiredStatus = new Map<number, number>();
  const desiredRoundTrip: number[] = [];
  const desiredInFlight = new Set<Promise<unknown>>();
  const lines = createInterface({ input: child.stdout });
  const loadDone = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) {
        console.log(`  connected ${line.slice(6)} devices in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        // the back end: desired changes of random devices through the REST route, each carrying the time it was issued
        const every = 1000 / DESIRED_PER_S;
        const start = Date.now();
        if (DESIRED_PER_S <= 0) return;
        const timer = setInterval(() => {
          if (Date.now() - start > DURATION_S * 1000 - 500) return clearInterval(timer);
          const id = `bench-${Math.floor(Math.random() * DEVICES)}`;
          desiredSent++;
          const at = performance.now();
          const call = rest
            .call('PATCH', `/twins/${id}`, {
              properties: { desired: { bench: { t: performance.timeOrigin + at, n: desiredSent } } },
            })
            .then(
              (code) => {
                desiredStatus.set(code, (desiredStatus.get(code) ?? 0) + 1);
                desiredRoundTrip.push(performance.now() - at);
              },
              () => desiredStatus.set(0, (desiredStatus.get(0) ?? 0) + 1), // 0: the request failed
            );
          desiredInFlight.add(call);
          void call.finally(() => desiredInFlight.delete(call));
        }, every);
      } else if (line.startsWith('STATS ')) {
        stats = JSON.parse(line.slice(6)) as DeviceStats;
        resolve();
      }
    });
    child.once('exit', () => resolve());
  });
  await loadDone;
  children.delete(child);
  // the REST answers still due (the device process has drained its own)
  await Promise.race([Promise.allSettled([...desiredInFlight]), new Promise((r) => setTimeout(r, DRAIN_S * 1000))]);
  rest.close();
  served.child.kill('SIGTERM');
  await served.exited;
  children.delete(served.child);
  if (stats === undefined) throw new Error('the device process ended without figures');

  // twinlog's record sizes, read back through the Log port
  const log: Log =
    kind === 'kafka'
      ? createKafkaLog({ brokers: brokers.split(','), topicPrefix: prefix })
      : createEmbeddedLog({ path: join(data, 'twinlog.db') });
  const device = await meanRecordBytes(log, 'twin.device');
  const change = await meanRecordBytes(log, 'twin.changes');
  const snapshot = await meanRecordBytes(log, 'twin.snapshots');
  await log.close();
  const inputBytes = Math.round(device.bytes);
  const outputBytes = Math.round(change.bytes + snapshot.bytes);

  const reportedPerS = stats.ackedInWindow / DURATION_S;
  const allAcked =
    stats.unanswered === 0 && stats.errors === 0 && stats.connected === DEVICES && reportedPerS >= 0.99 * offered;
  const ackP99 = stats.ack.p99 ?? Number.NaN; // NaN travels as null in JSON
  const desiredP99 = stats.desired.p99 ?? Number.NaN;
  const rt = latency(desiredRoundTrip);
  console.log('twinlog serve:');
  console.log(
    `  connect: ${stats.connected}/${DEVICES} devices in ${(stats.connectMs / 1000).toFixed(1)} s (TLS + SAS + SUBSCRIBE, 100 at a time)`,
  );
  console.log(
    `  baseline GET round trip (no load): p50 ${fmt(stats.get.p50)} ms, p99 ${fmt(stats.get.p99)} ms over ${stats.get.n}`,
  );
  console.log(
    `  reported PATCH: offered ${offered.toFixed(0)}/s, sent ${(stats.sent / DURATION_S).toFixed(0)}/s, acked in the window ${reportedPerS.toFixed(0)}/s; of ${stats.sent} sent, ${stats.ack.n} acked 2xx by the end of the drain, ${stats.unanswered} never answered`,
  );
  console.log(
    `  reported ack (PUBLISH → 204 after the projector): p50 ${fmt(stats.ack.p50)} ms, p99 ${fmt(ackP99)} ms over ${stats.ack.n}`,
  );
  console.log(
    `  desired (PATCH /twins/{id} issued → device notified): ${stats.desired.n} of ${desiredSent} received, p50 ${fmt(stats.desired.p50)} ms, p99 ${fmt(desiredP99)} ms; REST answers ${JSON.stringify(Object.fromEntries(desiredStatus))}, round trip p50 ${fmt(rt.p50)} ms, p99 ${fmt(rt.p99)} ms`,
  );
  console.log(
    `  errors (refused connects, non-2xx MQTT answers): ${stats.errors}, non-2xx by status ${JSON.stringify(stats.statuses)}`,
  );
  console.log(`  all reports acked at the offered rate: ${allAcked ? 'yes' : 'NO'}`);
  console.log(
    `  record sizes (mean of the last ≤ 300 of partition 0, key + value + headers): twin.device ${device.bytes.toFixed(0)} B (${device.sampled}), ` +
      `twin.changes ${change.bytes.toFixed(0)} B (${change.sampled}), twin.snapshots ${snapshot.bytes.toFixed(0)} B (${snapshot.sampled})`,
  );

  let floorP99 = Number.NaN;
  if (FLOOR && kind === 'kafka') {
    console.log(
      `floor (no twinlog code, same broker): exactly-once consume-transform-produce, ${offered.toFixed(0)} records/s for ${DURATION_S} s after ${FLOOR_WARMUP_S} s, ${PARTITIONS} partitions, ` +
        `input ${inputBytes} B (a twin.device record), output ${outputBytes} B per input (a change record + a snapshot), producer, transform and reader in one child process (as serve)`,
    );
    const floor = await runEosFloor(
      {
        brokers,
        rate: offered,
        durationS: DURATION_S + FLOOR_WARMUP_S,
        warmupS: FLOOR_WARMUP_S,
        partitions: PARTITIONS,
        keys: DEVICES,
        inputBytes,
        outputBytes,
        layout: 'serve',
      },
      children,
    );
    floorP99 = printEosFloor(floor, CORES).p99_ms;
  } else console.log(`floor: skipped (${kind === 'kafka' ? 'BENCH_FLOOR=0' : 'the floor runs on Kafka only'})`);
  await stopBroker();
  rmSync(dir, { recursive: true, force: true });

  const r1 = (n: number): number => Math.round(n * 10) / 10;
  const r2 = (n: number): number => Math.round(n * 100) / 100;
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log(
    `  issue #13 item 3: all acked at the offered rate ${met(allAcked)}; ack p99 ≤ 2 × floor p99 ${met(ackP99 <= 2 * floorP99)} (${fmt(ackP99 / floorP99)}×); ` +
      `desired p99 ≤ 2 × floor p99 ${met(desiredP99 <= 2 * floorP99)} (${fmt(desiredP99 / floorP99)}×)`,
  );
  console.log(`  load average ${load0} at start, ${loadavg()} at the end (shared machine)`);
  console.log(
    `RESULT ${JSON.stringify({
      devices: stats.connected,
      reported_per_s: Math.round(reportedPerS),
      reported_ack_p99_ms: r1(ackP99),
      desired_notify_p99_ms: r1(desiredP99),
      floor_p99_ms: r1(floorP99),
      ack_vs_floor: r2(ackP99 / floorP99),
      desired_vs_floor: r2(desiredP99 / floorP99),
    })}`,
  );
}

if (process.argv.includes('--devices')) {
  const port = Number(process.argv[process.argv.indexOf('--devices') + 1]);
  await runDevices(port, process.env['BENCH_CA'] ?? '');
} else {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    console.error('bench:gateway failed:', e);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }
}
