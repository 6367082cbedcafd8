/**
 * The bare exactly-once pipeline floor, shared by bench:floor (part 3) and bench:gateway: a
 * consume-transform-produce with kafkajs and nothing else, at a target rate, measured from the
 * moment a record is made to the moment a read_committed reader receives its output.
 *
 * - The gateway's side (`drive`): an idempotent producer (acks -1, maxInFlightRequests 1) gets
 *   `rate` records/s on topic `in` (keys over `keys` device ids, the value a JSON object carrying
 *   the `performance.now()` at which the record was made, padded with trailing spaces to
 *   `inputBytes`), one `send` in flight at a time taking every record made meanwhile; and a
 *   read_committed consumer on `out` (maxWaitTimeInMs 10).
 * - The projector's side (`startTransform`): a consumer group on `in` (read_committed, maxWait
 *   10 ms, minBytes 1, autoCommit off, all partitions consumed concurrently), `eachBatch` with one
 *   transactional producer per partition (idempotent, maxInFlightRequests 1, retry from 5 ms as
 *   createKafkaLog): `transaction()` → `send` one record per input to `out` (same key, the input's
 *   bytes followed by spaces up to `outputBytes`: no decoding, JSON still parses) → `sendOffsets`
 *   of the batch (retried on CONCURRENT_TRANSACTIONS) → `commit()`.
 *
 * Layouts: `split` runs the transform in a child process and the gateway's side in the caller's
 * (bench:floor's part 3 as first written: the projector in a process of its own); `serve` runs both
 * sides together in one child process, one event loop, as `twinlog serve` runs its gateways and
 * projector — the caller's process only waits.
 *
 * Measured over the window after `warmupS`: made → received p50/p99 (every record made in the
 * window must arrive, exactly once, or the floor throws), outputs/s, sends/s, transactions/s,
 * CPU of the processes involved and of the whole machine (`os.cpus()`, the broker included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { Kafka, logLevel, type Message } from 'kafkajs';
import { latency, type Latency } from '../support.ts';

export interface EosFloorOptions {
  readonly brokers: string;
  readonly rate: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly partitions: number;
  /** Distinct keys of the input records (the device ids). */
  readonly keys: number;
  /** Bytes of each input value (at least the ~50 bytes of its JSON). */
  readonly inputBytes: number;
  /** Bytes of each output value (at least the input's). */
  readonly outputBytes: number;
  readonly layout: 'split' | 'serve';
}

export interface TransformStats {
  readonly cpuMs: number;
  readonly txns: number;
  readonly records: number;
  readonly busy: number;
}

export interface EosFloor {
  readonly latency: Latency;
  readonly outPerS: number;
  readonly madePerS: number;
  readonly sends: number;
  /** CPU of the gateway's side; in the `serve` layout, of the one process running both sides. */
  readonly cpuMs: number;
  readonly machineBusy: number;
  readonly transform: TransformStats;
  readonly windowS: number;
  readonly layout: 'split' | 'serve';
  readonly inputBytes: number;
  readonly outputBytes: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cpuMs = (since?: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

let concurrentRefusals = 0; // CONCURRENT_TRANSACTIONS answers kafkajs logged (it retries AddPartitionsToTxn itself)
/** The answers createKafkaLog retries: CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS. */
export const isBusy = (e: unknown): boolean => {
  for (
    let x = e as { code?: unknown; cause?: unknown } | undefined;
    x !== undefined && x !== null;
    x = x.cause as typeof x
  ) {
    if (x.code === 51 || x.code === 14) return true;
  }
  return false;
};
export const refusals = (): number => concurrentRefusals;
export const resetRefusals = (): void => void (concurrentRefusals = 0);

export function makeKafka(brokers: string): Kafka {
  return new Kafka({
    clientId: 'twinlog-bench-floor',
    brokers: brokers.split(','),
    logLevel: logLevel.ERROR,
    logCreator:
      () =>
      ({ namespace, log }) => {
        const text = `${log.message} ${String(log['error'] ?? '')}`;
        if (!text.includes('another concurrent operation')) console.error(`kafkajs: ${text}`);
        else if (namespace === 'Connection') concurrentRefusals++; // one per refused request
      },
  });
}

/** Busy and total time of all cores so far (os.cpus(): every process on the machine). */
export const machineTimes = (): { busy: number; total: number } => {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.irq + times.idle;
    busy += all - times.idle;
    total += all;
  }
  return { busy, total };
};

/** `value` followed by spaces up to `bytes` (JSON.parse ignores trailing whitespace). */
const padded = (value: Buffer, bytes: number): Buffer =>
  value.length >= bytes ? value : Buffer.concat([value, Buffer.alloc(bytes - value.length, 0x20)]);

// ---- the projector's side ---------------------------------------------------------------------------

interface Transform {
  mark(): void;
  end(): TransformStats;
  stop(): Promise<void>;
}

async function startTransform(
  kafka: Kafka,
  prefix: string,
  partitions: number,
  outputBytes: number,
): Promise<Transform> {
  const group = `${prefix}transform`;
  const producers = await Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const producer = kafka.producer({
        transactionalId: `${prefix}tx-${p}`,
        idempotent: true,
        maxInFlightRequests: 1,
        retry: { initialRetryTime: 5, maxRetryTime: 1000, retries: 37 },
      });
      await producer.connect();
      return producer;
    }),
  );
  const consumer = kafka.consumer({ groupId: group, readUncommitted: false, maxWaitTimeInMs: 10, minBytes: 1 });
  await consumer.connect();
  await consumer.subscribe({ topic: `${prefix}in`, fromBeginning: true });
  const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
  let txns = 0;
  let records = 0;
  let busy = 0;
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: partitions,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      const tx = await producers[batch.partition]!.transaction();
      try {
        await tx.send({
          topic: `${prefix}out`,
          acks: -1,
          messages: batch.messages.map((m) => ({ key: m.key, value: padded(m.value!, outputBytes) })),
        });
        const offsets = [
          {
            topic: batch.topic,
            partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }],
          },
        ];
        for (let tries = 0; ; tries++) {
          try {
            await tx.sendOffsets({ consumerGroupId: group, topics: offsets });
            break;
          } catch (e) {
            if (!isBusy(e) || tries >= 1000) throw e; // as createKafkaLog: kafkajs does not retry AddOffsetsToTxn
            busy++;
            await sleep(5);
          }
        }
        await tx.commit();
      } catch (e) {
        await tx.abort().catch(() => {});
        throw e;
      }
      txns++;
      records += batch.messages.length;
    },
  });
  await joined;
  let cpu0 = process.cpuUsage();
  let at0 = { txns, records, busy: busy + concurrentRefusals };
  return {
    mark() {
      cpu0 = process.cpuUsage();
      at0 = { txns, records, busy: busy + concurrentRefusals };
    },
    end: () => ({
      cpuMs: cpuMs(cpu0),
      txns: txns - at0.txns,
      records: records - at0.records,
      busy: busy + concurrentRefusals - at0.busy,
    }),
    stop: async () => void (await Promise.all([consumer.disconnect(), ...producers.map((p) => p.disconnect())])),
  };
}

// ---- the gateway's side -----------------------------------------------------------------------------

interface Driven {
  readonly latency: Latency;
  readonly outPerS: number;
  readonly madePerS: number;
  readonly sends: number;
  readonly cpuMs: number;
  readonly machineBusy: number;
  readonly transform: TransformStats;
}

/** Makes records at the rate, reads the outputs, and asks the transform (wherever it runs) for its figures over the window. */
async function drive(
  kafka: Kafka,
  prefix: string,
  o: EosFloorOptions,
  transform: { mark(): void; end(): Promise<TransformStats> },
): Promise<Driven> {
  const [inTopic, outTopic] = [`${prefix}in`, `${prefix}out`];
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const reader = kafka.consumer({
    groupId: `${prefix}reader`,
    readUncommitted: false,
    maxWaitTimeInMs: 10,
    minBytes: 1,
  });
  await reader.connect();
  await reader.subscribe({ topic: outTopic, fromBeginning: true });
  const readerJoined = new Promise((resolve) => reader.on(reader.events.GROUP_JOIN, resolve));

  let t0 = Number.POSITIVE_INFINITY;
  const from = (): number => t0 + o.warmupS * 1000;
  const until = (): number => t0 + o.durationS * 1000;
  const latencies: number[] = [];
  const seen = new Set<number>();
  let dupes = 0;
  let outInWindow = 0;
  await reader.run({
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      if (now >= from() && now < until()) outInWindow += batch.messages.length;
      for (const m of batch.messages) {
        const { t, n } = JSON.parse(m.value!.toString()) as { t: number; n: number };
        if (t < from() || t >= until()) continue;
        if (seen.has(n)) dupes++;
        seen.add(n);
        latencies.push(now - t);
      }
    },
  });
  await readerJoined;

  let pending: Message[] = [];
  let sending = false;
  let sends = 0;
  let failure: unknown;
  const flush = (): void => {
    if (sending || pending.length === 0) return;
    const messages = pending;
    pending = [];
    sending = true;
    sends++;
    producer.send({ topic: inTopic, acks: -1, messages }).then(
      () => {
        sending = false;
        flush();
      },
      (e: unknown) => (failure ??= e),
    );
  };
  let made = 0;
  let madeInWindow = 0;
  t0 = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    for (const due = Math.floor(((Math.min(now, until()) - t0) * o.rate) / 1000); made < due; made++) {
      const device = `device-${String(made % o.keys).padStart(4, '0')}`;
      pending.push({
        key: device,
        value: padded(Buffer.from(JSON.stringify({ t: now, n: made, temp: 20 + (made % 10) })), o.inputBytes),
      });
      if (now >= from() && now < until()) madeInWindow++;
    }
    flush();
  }, 1);

  await sleep(o.warmupS * 1000);
  transform.mark();
  const cpu0 = process.cpuUsage();
  const m0 = machineTimes();
  sends = 0;
  await sleep((o.durationS - o.warmupS) * 1000);
  const transformStats = await transform.end();
  const cpu = cpuMs(cpu0);
  const m1 = machineTimes();
  const windowSends = sends;
  clearInterval(tick);

  const deadline = Date.now() + 60_000;
  while (latencies.length < madeInWindow && failure === undefined) {
    if (Date.now() > deadline)
      throw new Error(`only ${latencies.length} of ${madeInWindow} records came out within 60 s`);
    await sleep(10);
  }
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the consumer caught
  if (failure !== undefined) throw failure;
  if (dupes > 0 || seen.size !== madeInWindow)
    throw new Error(`not exactly once: ${seen.size} distinct of ${madeInWindow} made, ${dupes} duplicates`);
  await Promise.all([reader.disconnect(), producer.disconnect()]);
  const windowS = o.durationS - o.warmupS;
  return {
    latency: latency(latencies),
    outPerS: outInWindow / windowS,
    madePerS: madeInWindow / windowS,
    sends: windowSends,
    cpuMs: cpu,
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
    transform: transformStats,
  };
}

// ---- the run ----------------------------------------------------------------------------------------

const childArgs = (mode: '--transform' | '--pipeline', prefix: string, o: EosFloorOptions): string[] => [
  '--conditions=source',
  '--import',
  'tsx',
  import.meta.filename,
  mode,
  prefix,
  JSON.stringify(o),
];

/**
 * Runs the floor on fresh topics `in` and `out` (deleted afterwards) and returns its figures.
 * Child processes it starts are added to `children` while they run (for a caller's budget to kill).
 */
export async function runEosFloor(o: EosFloorOptions, children: Set<ChildProcess> = new Set()): Promise<EosFloor> {
  const kafka = makeKafka(o.brokers);
  const prefix = `bench-floor-${Date.now()}-p.`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: ['in', 'out'].map((t) => ({ topic: `${prefix}${t}`, numPartitions: o.partitions, replicationFactor: 1 })),
    waitForLeaders: true,
  });
  const child = spawn(process.execPath, childArgs(o.layout === 'split' ? '--transform' : '--pipeline', prefix, o), {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the floor's child process exited with ${String(code)}`))),
  );
  exited.catch(() => {});
  const fromChild = <T>(): Promise<T> =>
    Promise.race([new Promise<T>((resolve) => child.once('message', (m) => resolve(m as T))), exited]);
  try {
    let driven: Driven;
    if (o.layout === 'split') {
      await fromChild<'ready'>();
      driven = await drive(kafka, prefix, o, {
        mark: () => void child.send('mark'),
        end: () => (child.send('end'), fromChild<TransformStats>()),
      });
    } else {
      const answer = await fromChild<{ ok: Driven } | { error: string }>();
      if ('error' in answer) throw new Error(`the floor's process failed: ${answer.error}`);
      driven = answer.ok;
    }
    child.send('stop');
    await exited.catch(() => {});
    return {
      ...driven,
      windowS: o.durationS - o.warmupS,
      layout: o.layout,
      inputBytes: o.inputBytes,
      outputBytes: o.outputBytes,
    };
  } finally {
    children.delete(child);
    if (child.exitCode === null) child.kill('SIGKILL');
    await admin.deleteTopics({ topics: [`${prefix}in`, `${prefix}out`] }).catch(() => {});
    await admin.disconnect();
  }
}

/** The child process: `--transform` (split layout, driven over IPC) or `--pipeline` (both sides here). */
async function child(mode: string, prefix: string, o: EosFloorOptions): Promise<void> {
  process.on('disconnect', () => process.exit(1)); // the parent is gone
  const kafka = makeKafka(o.brokers);
  const transform = await startTransform(kafka, prefix, o.partitions, o.outputBytes);
  process.on('message', (m) => {
    if (m === 'mark') transform.mark();
    else if (m === 'end') process.send!(transform.end());
    else if (m === 'stop') void transform.stop().finally(() => process.exit(0));
  });
  if (mode === '--transform') return void process.send!('ready');
  try {
    const driven = await drive(kafka, prefix, o, { mark: () => transform.mark(), end: async () => transform.end() });
    process.send!({ ok: driven });
  } catch (e) {
    process.send!({ error: String((e as Error).stack ?? e) });
  }
}

const modeAt = process.argv.findIndex((a) => a === '--transform' || a === '--pipeline');
if (modeAt > 0 && process.argv[1] === import.meta.filename) {
  await child(
    process.argv[modeAt]!,
    process.argv[modeAt + 1]!,
    JSON.parse(process.argv[modeAt + 2]!) as EosFloorOptions,
  );
}

/** Prints the floor's figures (indented under a heading the caller prints) and returns its p50/p99. */
export function printEosFloor(p: EosFloor, cores: number): { per_s: number; p50_ms: number; p99_ms: number } {
  const windowMs = p.windowS * 1000;
  const pc = (ms: number): string => `${((100 * ms) / (windowMs * cores)).toFixed(1)} %`;
  const f = (n: number): string => (Number.isNaN(n) ? 'n/a' : n.toFixed(1));
  const t = p.transform;
  console.log(
    `  made ${p.madePerS.toFixed(0)}/s (values ${p.inputBytes > 0 ? `padded to ${p.inputBytes}` : '~60'} bytes) in ${(p.sends / p.windowS).toFixed(0)} sends/s; out (${p.outputBytes > 0 ? `${p.outputBytes} bytes each` : 'copies'}, received by the reader in the window) ${p.outPerS.toFixed(0)}/s; every record once`,
  );
  console.log(
    `  transform: ${(t.txns / p.windowS).toFixed(0)} transactions/s, ${(t.records / Math.max(1, t.txns)).toFixed(1)} records each; CONCURRENT_TRANSACTIONS answers (retried): ${t.busy}`,
  );
  console.log(
    `  made → received read_committed from out: p50 ${f(p.latency.p50)} ms, p99 ${f(p.latency.p99)} ms over ${p.latency.n}`,
  );
  console.log(
    `  CPU over the window (process.cpuUsage / ${cores} cores × window): ` +
      (p.layout === 'split'
        ? `producer + reader ${pc(p.cpuMs)}, transform ${pc(t.cpuMs)}`
        : `the floor's one process (producer, transform, reader) ${pc(p.cpuMs)}`) +
      `; whole machine (os.cpus, broker and anything else included) ${(100 * p.machineBusy).toFixed(1)} %`,
  );
  const r1 = (n: number): number => Math.round(n * 10) / 10;
  return { per_s: Math.round(p.outPerS), p50_ms: r1(p.latency.p50), p99_ms: r1(p.latency.p99) };
}
