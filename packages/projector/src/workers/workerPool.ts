/**
 * Worker threads for the projector (docs/write-path.md, "Both cores"): partition *p* lives in
 * worker `p mod n`, which holds its `PartitionTask` and does the decoding, folding and encoding;
 * the main thread keeps the consumer and the commits. A {@link RemoteTask} stands for a task in a
 * worker with the same calls the projector makes on a local one.
 *
 * A worker that dies fails the requests it had; the projector's stage fails with them and its
 * supervisor starts a new run, which opens the partitions again in a fresh worker.
 */
import type { Worker } from 'node:worker_threads';
import type { InputOffsets } from '@twinlog/codec';
import type { Log, LogRecord } from '@twinlog/core';
import type { PassedTaskOptions, TaskOutput } from '../partitionTask.ts';
import { TOPICS, type InputTopic } from '../topics.ts';
import { packRecords, unpackAppends } from './packedRecords.ts';
import { startWorker } from './startWorker.ts';
import type { PackedOutput, TaskReport, WorkerRequest, WorkerResponse } from './protocol.ts';

/** What the projector needs of a partition's task, in this thread or in a worker. */
export interface ProjectorTask {
  readonly partition: number;
  /** Input records folded and not yet flushed. */
  readonly pending: number;
  readonly hasParked: boolean;
  readonly resumeOffsets: InputOffsets;
  fold(topic: InputTopic, records: readonly LogRecord[], backendCaughtUp: boolean): void | Promise<void>;
  flush(): TaskOutput | Promise<TaskOutput>;
  settle(backendCaughtUp: boolean): TaskOutput | undefined | Promise<TaskOutput | undefined>;
  /** Free what the task holds (a worker's copy); the task is not used afterwards. */
  close?(): Promise<void>;
}

class WorkerHandle {
  private readonly worker: Worker;
  private readonly waiting = new Map<
    number,
    { resolve: (r: WorkerResponse & { ok: true }) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  dead = false;

  constructor() {
    this.worker = startWorker('projectorWorker');
    this.worker.unref();
    this.worker.on('message', (m: WorkerResponse) => {
      const w = this.waiting.get(m.id);
      if (w === undefined) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m);
      else
        w.reject(
          Object.assign(new Error(`projector worker: ${m.message}`), m.code === undefined ? {} : { code: m.code }),
        );
    });
    const die = (e: Error): void => {
      this.dead = true;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`projector worker exited with code ${code}`)));
  }

  request(request: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerResponse & { ok: true }> {
    if (this.dead) return Promise.reject(new Error('projector worker is gone'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, request }, transfer);
    });
  }

  terminate(): Promise<number> {
    this.dead = true;
    return this.worker.terminate();
  }
}

/** A partition's task held by a worker. */
export class RemoteTask implements ProjectorTask {
  private report: TaskReport = { pending: 0, hasParked: false, resumeOffsets: { backend: 0, device: 0 } };

  constructor(
    readonly partition: number,
    private readonly worker: WorkerHandle,
  ) {}

  get pending(): number {
    return this.report.pending;
  }

  get hasParked(): boolean {
    return this.report.hasParked;
  }

  get resumeOffsets(): InputOffsets {
    return this.report.resumeOffsets;
  }

  async call(request: WorkerRequest, transfer?: ArrayBuffer[]): Promise<PackedOutput | undefined> {
    const r = await this.worker.request(request, transfer);
    if (r.report !== undefined) this.report = r.report;
    return r.output;
  }

  async fold(topic: InputTopic, records: readonly LogRecord[], caughtUp: boolean): Promise<void> {
    const packed = packRecords(records);
    await this.call({ op: 'fold', partition: this.partition, topic, records: packed, caughtUp }, [packed.bytes]);
  }

  async flush(): Promise<TaskOutput> {
    return outputOf((await this.call({ op: 'flush', partition: this.partition }))!);
  }

  async settle(caughtUp: boolean): Promise<TaskOutput | undefined> {
    const out = await this.call({ op: 'settle', partition: this.partition, caughtUp });
    return out === undefined ? undefined : outputOf(out);
  }

  async close(): Promise<void> {
    await this.call({ op: 'close', partition: this.partition }).catch(() => {});
  }
}

function outputOf(p: PackedOutput): TaskOutput {
  return {
    appends: unpackAppends(p.appends),
    positions: p.positions,
    stats: p.stats,
    rejectedByCode: p.rejectedByCode,
  };
}

export interface WorkerPool {
  /** Open partition `partition` in its worker, restored from `twin.snapshots`. */
  open(log: Log, partition: number, options: PassedTaskOptions): Promise<RemoteTask>;
  terminate(): Promise<void>;
}

/** Start `size` worker threads (lazily: a worker starts when its first partition opens). */
export function createWorkerPool(size: number): WorkerPool {
  if (!(Number.isSafeInteger(size) && size >= 1))
    throw new RangeError(`workers must be a positive integer, got ${size}`);
  const handles = new Array<WorkerHandle | undefined>(size);
  const handleFor = (partition: number): WorkerHandle => {
    const i = partition % size;
    let h = handles[i];
    if (h === undefined || h.dead) {
      h = new WorkerHandle();
      handles[i] = h;
    }
    return h;
  };
  return {
    async open(log, partition, options) {
      const task = new RemoteTask(partition, handleFor(partition));
      await task.call({ op: 'open', partition, options });
      const end = (await log.endOffsets(TOPICS.snapshots))[partition] ?? 0;
      for await (const records of log.read(TOPICS.snapshots, partition, { from: 0, to: end })) {
        const packed = packRecords(records);
        await task.call({ op: 'restore', partition, records: packed }, [packed.bytes]);
      }
      return task;
    },
    async terminate() {
      await Promise.all(handles.flatMap((h) => (h === undefined ? [] : [h.terminate()])));
    },
  };
}
