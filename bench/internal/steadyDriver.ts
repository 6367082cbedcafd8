/**
 * The outside world of bench:pipeline's steady-state variant, in its own process (so that its work
 * does not sit in the projector's event loop, and its CPU is counted apart):
 *
 * - a producer appends the benchmark workload (bench/workload.ts, generated and encoded before the
 *   window) through `createKafkaLog().append` at a fixed rate for a fixed time; every 5 ms it hands all the
 *   records that fell due to one append per input topic (one append in flight per topic; records
 *   that fall due meanwhile wait for the next) and keeps, per topic partition, the offsets the
 *   append returned with the time the append was called;
 * - a plain kafkajs consumer (read_committed, maxWait 20 ms) reads `twin.snapshots` from the start
 *   and keeps every checkpoint record (partition, input offsets after the batch) with the time it
 *   arrived; an input record is reflected by the first checkpoint of its partition whose offset
 *   for its topic is past it: append → that arrival is the record's end-to-end latency;
 * - every 250 ms an admin client reads the projector group's committed offsets: lag = Σ (end −
 *   committed) over both input topics' partitions, the end offsets being what the appends returned
 *   so far (+ 1), since this process is the inputs' only writer. A second latency is kept from the
 *   moment each record fell due on the producer's schedule, which adds its wait for the append.
 *
 * After the production window it waits until the group caught up (at most `drainS`) and the
 * checkpoints of everything appended arrived, then sends its figures to the parent over IPC.
 * Configuration comes as JSON in BENCH_STEADY_CONFIG.
 */
import { decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import type { AppendRecord, AppendResult } from '@twinlog/core';
import { createKafkaLog } from '@twinlog/log-kafka';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
import { Kafka, logLevel } from 'kafkajs';
import { benchEvents } from '../workload.ts';
import { percentile, slope } from './stats.ts';

export interface SteadyConfig {
  readonly brokers: readonly string[];
  readonly prefix: string;
  /** The projector's (logical) group. */
  readonly group: string;
  readonly rate: number;
  readonly seconds: number;
  readonly devices: number;
  readonly partitions: number;
  readonly drainS: number;
  readonly sampleMs: number;
}

export interface SteadyFigures {
  readonly appended: number;
  /** Records that fell due in the window but were still waiting for an append at its end. */
  readonly notAppended: number;
  readonly appendPerS: number;
  readonly appendCalls: number;
  /** Lag samples taken during the production window. */
  readonly samples: number;
  readonly lagP50: number;
  readonly lagP99: number;
  readonly lagMax: number;
  readonly lagAtEnd: number;
  /** Least-squares growth of the lag over the second half of the window, records/s. */
  readonly lagGrowthPerS: number;
  /** Input records the group committed during the window, per s. */
  readonly committedPerS: number;
  /** Seconds after the window until the group caught up, or null when it did not within drainS. */
  readonly drainS: number | null;
  readonly e2eN: number;
  readonly e2eP50: number;
  readonly e2eP99: number;
  readonly e2eMax: number;
  /** The same, from when each record fell due on the producer's schedule (its wait for the append included). */
  readonly dueP50: number;
  readonly dueP99: number;
  /** Appended records no checkpoint covered by the end (counted in the percentiles at their latency so far). */
  readonly unmatched: number;
  /** CPU of this process over the window (until the last append returned), ms. */
  readonly cpuMs: number;
  /** Generating and encoding the workload before the window, ms. */
  readonly generateMs: number;
}

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Growable columns of (offset, appendedAt) for one topic partition. */
class Appended {
  offsets: number[] = [];
  /** When the append carrying the record was called. */
  at: number[] = [];
  /** When the record fell due (the producer's schedule): includes waiting for the append before. */
  due: number[] = [];
}

async function main(config: SteadyConfig): Promise<SteadyFigures> {
  const { brokers, prefix, group, rate, seconds, devices, partitions } = config;
  const inputs = [TOPICS.backend, TOPICS.device] as const;
  const log = createKafkaLog({ brokers: [...brokers], topicPrefix: prefix, clientId: 'twinlog-bench-steady' });
  const kafka = new Kafka({ clientId: 'twinlog-bench-steady', brokers: [...brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();

  // the checkpoint reader
  const checkpoints: { backend: number[]; device: number[]; at: number[] }[] = Array.from(
    { length: partitions },
    () => ({ backend: [], device: [], at: [] }),
  );
  const reader = kafka.consumer({
    groupId: `${prefix}steady-reader`,
    readUncommitted: false,
    maxWaitTimeInMs: 20,
    minBytes: 1,
    maxBytesPerPartition: 4 * 1024 * 1024,
  });
  await reader.connect();
  await reader.subscribe({ topic: `${prefix}${TOPICS.snapshots}`, fromBeginning: true });
  const joined = new Promise((resolve) => reader.on(reader.events.GROUP_JOIN, resolve));
  await reader.run({
    autoCommit: false,
    partitionsConsumedConcurrently: partitions,
    eachBatch: async ({ batch }) => {
      const at = now();
      for (const m of batch.messages) {
        if (m.value === null || m.key === null || m.key.toString() !== CHECKPOINT_KEY) continue;
        const cp = decodeOutputRecord(m.value, 'checkpoint');
        const list = checkpoints[cp.partition]!;
        list.backend.push(cp.offsets.backend);
        list.device.push(cp.offsets.device);
        list.at.push(at);
      }
    },
  });
  await joined;

  const appended = new Map<string, Appended[]>(
    inputs.map((t) => [t, Array.from({ length: partitions }, () => new Appended())]),
  );

  // the lag sampler
  const physicalGroup = `${prefix}${group}`;
  // The inputs' end offsets are known here: the last offset each append returned, + 1 (only this
  // process writes the inputs), so a sample costs one OffsetFetch.
  const endOffset = (topic: string, p: number): number => {
    const col = appended.get(topic)![p]!;
    return col.offsets.length === 0 ? 0 : col.offsets[col.offsets.length - 1]! + 1;
  };
  const lagNow = async (): Promise<{ lag: number; committed: number }> => {
    const committed = await admin.fetchOffsets({ groupId: physicalGroup, topics: inputs.map((t) => `${prefix}${t}`) });
    let lag = 0;
    let done = 0;
    for (const t of inputs) {
      const c = committed.find((x) => x.topic === `${prefix}${t}`)?.partitions ?? [];
      for (let p = 0; p < partitions; p++) {
        const at = Math.max(0, Number(c.find((x) => x.partition === p)?.offset ?? -1));
        done += at;
        lag += Math.max(0, endOffset(t, p) - at);
      }
    }
    return { lag, committed: done };
  };

  // The workload is generated and encoded before the window (~20 µs of CPU per event, which would
  // otherwise compete with the projector for the machine's cores during the window).
  const genStart = now();
  const count = Math.ceil(rate * seconds);
  const workload: AppendRecord[] = new Array<AppendRecord>(count);
  const toDevice = new Uint8Array(count);
  let generated = 0;
  for (const e of benchEvents({
    events: count,
    devices,
    startWall: Math.floor(Date.now() / 86_400_000) * 86_400_000,
  })) {
    toDevice[generated] = e.section === 'reported' ? 1 : 0;
    workload[generated++] = { key: e.deviceId, value: encodeEvent(e) };
  }
  const generateMs = now() - genStart;

  process.send!({ type: 'ready' });
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const windowEnd = t0 + seconds * 1000;
  const samples: { t: number; lag: number; committed: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    for (let next = t0; sampling;) {
      const s = await lagNow().catch(() => undefined);
      if (s !== undefined) samples.push({ t: now(), ...s });
      next += config.sampleMs;
      const wait = next - now();
      if (wait > 0) await sleep(wait);
      else next = now();
    }
  })();

  // the producer
  const pending = new Map<string, AppendRecord[]>(inputs.map((t) => [t, []]));
  const pendingDue = new Map<string, number[]>(inputs.map((t) => [t, []]));
  const inFlight = new Map<string, Promise<void> | undefined>(inputs.map((t) => [t, undefined]));
  let made = 0;
  let appendedCount = 0;
  let appendCalls = 0;
  let failure: unknown;
  let closed = false;
  const flush = (topic: string): void => {
    const records = pending.get(topic)!;
    if (closed || inFlight.get(topic) !== undefined || records.length === 0) return;
    const dues = pendingDue.get(topic)!;
    pending.set(topic, []);
    pendingDue.set(topic, []);
    const at = now();
    appendCalls++;
    inFlight.set(
      topic,
      log.append(topic, records).then(
        (results: AppendResult[]) => {
          const parts = appended.get(topic)!;
          results.forEach(({ partition, offset }, i) => {
            const col = parts[partition]!;
            col.offsets.push(offset);
            col.at.push(at);
            col.due.push(dues[i]!);
          });
          appendedCount += results.length;
          inFlight.set(topic, undefined);
          flush(topic);
        },
        (e: unknown) => {
          failure ??= e;
          inFlight.set(topic, undefined);
        },
      ),
    );
  };
  while (failure === undefined) {
    const t = now();
    const due = Math.floor(((Math.min(t, windowEnd) - t0) * rate) / 1000);
    for (; made < due && made < generated; made++) {
      const topic = toDevice[made] === 1 ? TOPICS.device : TOPICS.backend;
      pending.get(topic)!.push(workload[made]!);
      pendingDue.get(topic)!.push(t0 + (made * 1000) / rate);
    }
    for (const topic of inputs) flush(topic);
    if (t >= windowEnd) break;
    await sleep(5);
  }
  // The window ends on time: records that fell due but wait for an append are not appended (the
  // producer could not keep the rate); the appends in flight complete.
  closed = true;
  const notAppended = [...pending.values()].reduce((n, r) => n + r.length, 0);
  await Promise.all([...inFlight.values()]);
  const appendMs = now() - t0;
  process.send!({ type: 'window-end' });
  const windowCpu = process.cpuUsage(cpu0);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the consumer caught
  if (failure !== undefined) throw failure;
  const inWindow = samples.filter((s) => s.t <= windowEnd);

  // drain: until the group committed everything, then until the checkpoints arrived
  const drainStart = now();
  let drained: number | null = null;
  while (now() - drainStart < config.drainS * 1000) {
    const last = samples[samples.length - 1];
    if (last !== undefined && last.t > windowEnd && last.lag === 0) {
      drained = (last.t - windowEnd) / 1000;
      break;
    }
    await sleep(50);
  }
  sampling = false;
  await sampler;
  const covered = (topic: 'backend' | 'device', p: number): number => {
    const list = checkpoints[p]![topic];
    return list.length === 0 ? 0 : list[list.length - 1]!;
  };
  const lastOffset = (topic: string, p: number): number => {
    const col = appended.get(topic)![p]!;
    return col.offsets.length === 0 ? -1 : col.offsets[col.offsets.length - 1]!;
  };
  for (const until = now() + (drained === null ? 0 : 10_000); now() < until; await sleep(50)) {
    let all = true;
    for (let p = 0; p < partitions; p++) {
      if (
        covered('backend', p) <= lastOffset(TOPICS.backend, p) ||
        covered('device', p) <= lastOffset(TOPICS.device, p)
      )
        all = false;
    }
    if (all) break;
  }
  await reader.disconnect().catch(() => {});

  // match every appended record with the first checkpoint of its partition past it
  // A record no checkpoint covered by the end counts with its latency so far (a lower bound).
  const latencies: number[] = [];
  const fromDue: number[] = [];
  let unmatched = 0;
  const tEnd = now();
  for (const topic of inputs) {
    const key = topic === TOPICS.backend ? 'backend' : 'device';
    appended.get(topic)!.forEach((col, p) => {
      const cps = checkpoints[p]!;
      const offs = cps[key];
      let j = 0;
      for (let i = 0; i < col.offsets.length; i++) {
        const o = col.offsets[i]!;
        while (j < offs.length && offs[j]! <= o) j++;
        if (j === offs.length) {
          unmatched++;
          latencies.push(tEnd - col.at[i]!);
          fromDue.push(tEnd - col.due[i]!);
        } else {
          latencies.push(cps.at[j]! - col.at[i]!);
          fromDue.push(cps.at[j]! - col.due[i]!);
        }
      }
    });
  }

  const lags = inWindow.map((s) => s.lag);
  const half = inWindow.filter((s) => s.t >= t0 + (seconds * 1000) / 2);
  const first = inWindow[0];
  const last = inWindow[inWindow.length - 1];
  await Promise.all([admin.disconnect().catch(() => {}), log.close().catch(() => {})]);
  return {
    appended: appendedCount,
    notAppended,
    appendPerS: Math.round(appendedCount / (appendMs / 1000)),
    appendCalls,
    samples: inWindow.length,
    lagP50: percentile(lags, 50),
    lagP99: percentile(lags, 99),
    lagMax: lags.length === 0 ? Number.NaN : lags.reduce((a, b) => Math.max(a, b)),
    lagAtEnd: last?.lag ?? Number.NaN,
    lagGrowthPerS: Math.round(slope(half.map((s) => [s.t / 1000, s.lag] as const))),
    committedPerS:
      first === undefined || last === undefined || last.t === first.t
        ? Number.NaN
        : Math.round((last.committed - first.committed) / ((last.t - first.t) / 1000)),
    drainS: drained,
    e2eN: latencies.length,
    e2eP50: percentile(latencies, 50),
    e2eP99: percentile(latencies, 99),
    e2eMax: latencies.length === 0 ? Number.NaN : latencies.reduce((a, b) => Math.max(a, b)),
    dueP50: percentile(fromDue, 50),
    dueP99: percentile(fromDue, 99),
    unmatched,
    cpuMs: (windowCpu.user + windowCpu.system) / 1000,
    generateMs,
  };
}

if (process.send !== undefined && process.env['BENCH_STEADY_CONFIG'] !== undefined) {
  process.on('disconnect', () => process.exit(1)); // the parent is gone
  main(JSON.parse(process.env['BENCH_STEADY_CONFIG']) as SteadyConfig).then(
    (figures) => process.send!({ type: 'figures', figures }, () => process.exit(0)),
    (e: unknown) =>
      process.send!({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }, () =>
        process.exit(1),
      ),
  );
}
