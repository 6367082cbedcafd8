/**
 * Replay on both cores (docs/write-path.md, "Replay"): the partitions are dealt round-robin to worker
 * threads. Given a {@link WorkerLogSpec}, each worker opens the log itself, so no record crosses
 * between threads; without one, this thread reads every partition and sends its records to the
 * worker that folds it, packed, at most {@link FEED_WINDOW} messages ahead of the worker
 * (docs/write-path.md, "Replay on Kafka"). A worker sends back each partition's counts, its states as state documents (unless the caller
 * does not keep them: they cost about as much to send as to fold), (for
 * `into`) the encoded records a rebuild writes, and (for an audit) its lines, which are written out
 * in partition order through {@link OrderedChunks}. The caller merges them in partition order, so the
 * result is the one a replay in this thread returns.
 */
import type { Worker } from 'node:worker_threads';
import { fromStateDoc, type AppendRecord, type Log, type LogRecord, type TwinState } from '@twinlog/core';
import type { AuditLinesJob } from '../auditEntry.ts';
import type { PassedTaskOptions } from '../partitionTask.ts';
import { mergedInputs, type PartitionEnds, type PartitionReplay, type WorkerLogSpec } from '../replay.ts';
import { INPUT_TOPICS } from '../topics.ts';
import { packRuns } from './packedRecords.ts';
import type { ReplayFeed, ReplayWorkerMessage, ReplayWorkerRequest } from './replayProtocol.ts';
import { OrderedChunks } from './orderedChunks.ts';
import { startWorker } from './startWorker.ts';

/** Records per message fed to a worker (at least; whole runs). */
const FEED_BATCH = 2000;
/** Messages sent to a worker and not yet taken by its fold, at most. */
const FEED_WINDOW = 4;

type Result = PartitionReplay & {
  states: Iterable<readonly [string, TwinState]>;
  twins: number;
  records?: readonly AppendRecord[];
};

export async function replayInWorkers({
  workers,
  log,
  workerLog,
  partitions,
  endsOf,
  until,
  options,
  into,
  keepStates,
  onRead,
  audit,
  onChunk,
}: {
  readonly workers: number;
  readonly log: Log;
  readonly workerLog: WorkerLogSpec | undefined;
  readonly partitions: readonly number[];
  readonly endsOf: (partition: number) => PartitionEnds;
  readonly until: number | undefined;
  readonly options: PassedTaskOptions;
  readonly into: boolean;
  readonly keepStates: boolean;
  readonly onRead: (records: number) => void;
  readonly audit?: AuditLinesJob;
  readonly onChunk?: (chunk: Uint8Array) => void;
}): Promise<Result[]> {
  const byPartition = new Map<number, Result>();
  const text = onChunk === undefined ? undefined : new OrderedChunks(partitions, onChunk);
  const shares = Array.from({ length: workers }, (_, w) => partitions.filter((_, i) => i % workers === w));
  const running: Worker[] = [];
  try {
    await Promise.all(
      shares.map(
        (share) =>
          new Promise<void>((resolve, reject) => {
            // a replay allocates ~7 KB per record that dies within its batch: a roomier young
            // generation promotes less of it (about 5 % faster, measured; docs/write-path.md, "Replay")
            const worker = startWorker('replayWorker', 128);
            running.push(worker);
            let finished = false;
            const credits = new Credits(FEED_WINDOW);
            worker.on('message', (m: ReplayWorkerMessage) => {
              if (m.type === 'taken') credits.give();
              else if (m.type === 'read') onRead(m.records);
              else if (m.type === 'lines') text?.write(m.partition, m.chunk);
              else if (m.type === 'partition') {
                byPartition.set(m.range.partition, {
                  range: m.range,
                  stats: m.stats,
                  read: m.read,
                  twins: m.twins,
                  states: m.states.map(([id, doc]) => [id, fromStateDoc(doc)] as const),
                  ...(m.records === undefined ? {} : { records: m.records }),
                });
                text?.end(m.range.partition);
              } else if (m.type === 'done') {
                finished = true;
                resolve();
              } else fail(new Error(`replay worker: ${m.message}`));
            });
            const fail = (e: Error): void => {
              credits.fail(e);
              reject(e);
            };
            worker.on('error', fail);
            worker.on('exit', (code) => {
              if (!finished) fail(new Error(`replay worker exited with code ${code} before it finished`));
            });
            const request: ReplayWorkerRequest = {
              ...(workerLog === undefined ? {} : { workerLog }),
              partitions: share.map((p) => ({ partition: p, ends: endsOf(p) })),
              until,
              options,
              into,
              keepStates,
              ...(audit === undefined ? {} : { audit }),
            };
            worker.postMessage(request);
            if (workerLog === undefined) feed(log, worker, share, endsOf, credits).catch(fail);
          }),
      ),
    );
  } finally {
    text?.close();
    await Promise.all(running.map((w) => w.terminate()));
  }
  return partitions.map((p) => byPartition.get(p)!);
}

/**
 * Read `share`'s partitions in this thread and send their records to `worker`, in fold order, a
 * message of at least {@link FEED_BATCH} records at a time, waiting for a credit before each.
 */
async function feed(
  log: Log,
  worker: Worker,
  share: readonly number[],
  endsOf: (partition: number) => PartitionEnds,
  credits: Credits,
): Promise<void> {
  const send = (m: ReplayFeed, transfer: ArrayBuffer[] = []): void => worker.postMessage(m, transfer);
  for (const partition of share) {
    let runs: (readonly [number, readonly LogRecord[]])[] = [];
    let count = 0;
    const flush = async (): Promise<void> => {
      await credits.take();
      const packed = packRuns(runs);
      send({ type: 'runs', runs: packed }, [packed.bytes]);
      runs = [];
      count = 0;
    };
    for await (const [topic, records] of mergedInputs(log, partition, endsOf(partition))) {
      runs.push([INPUT_TOPICS.indexOf(topic), records]);
      count += records.length;
      if (count >= FEED_BATCH) await flush();
    }
    if (count > 0) await flush();
    send({ type: 'end' });
  }
}

/** A window of messages in flight to one worker: `take` waits while none is free. */
class Credits {
  #free: number;
  #waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #failed: Error | undefined;

  constructor(window: number) {
    this.#free = window;
  }

  take(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  give(): void {
    const w = this.#waiting;
    if (w === undefined) this.#free++;
    else {
      this.#waiting = undefined;
      w.resolve();
    }
  }

  /** The worker is gone: a feed waiting for a credit stops with `e`. */
  fail(e: Error): void {
    this.#failed ??= e;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(e);
  }
}
