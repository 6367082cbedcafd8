/**
 * Replay on both cores (docs/write-path.md, "Replay"): the partitions are dealt round-robin to worker
 * threads, each of which opens the log itself (a {@link WorkerLogSpec}), so no record crosses between
 * threads; a worker sends back each partition's counts, its states as state documents (unless the caller
 * does not keep them: they cost about as much to send as to fold), (for
 * `into`) the encoded records a rebuild writes, and (for an audit) its lines, which are written out
 * in partition order through {@link OrderedChunks}. The caller merges them in partition order, so the
 * result is the one a replay in this thread returns.
 */
import type { Worker } from 'node:worker_threads';
import { fromStateDoc, type AppendRecord, type TwinState } from '@twinlog/core';
import type { AuditLinesJob } from '../auditEntry.ts';
import type { PassedTaskOptions } from '../partitionTask.ts';
import type { PartitionEnds, PartitionReplay, WorkerLogSpec } from '../replay.ts';
import type { ReplayWorkerMessage, ReplayWorkerRequest } from './replayProtocol.ts';
import { OrderedChunks } from './orderedChunks.ts';
import { startWorker } from './startWorker.ts';

type Result = PartitionReplay & {
  states: Iterable<readonly [string, TwinState]>;
  twins: number;
  records?: readonly AppendRecord[];
};

export async function replayInWorkers({
  workers,
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
  readonly workerLog: WorkerLogSpec;
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
            worker.on('message', (m: ReplayWorkerMessage) => {
              if (m.type === 'read') onRead(m.records);
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
              } else reject(new Error(`replay worker: ${m.message}`));
            });
            worker.on('error', reject);
            worker.on('exit', (code) => {
              if (!finished) reject(new Error(`replay worker exited with code ${code} before it finished`));
            });
            const request: ReplayWorkerRequest = {
              workerLog,
              partitions: share.map((p) => ({ partition: p, ends: endsOf(p) })),
              until,
              options,
              into,
              keepStates,
              ...(audit === undefined ? {} : { audit }),
            };
            worker.postMessage(request);
          }),
      ),
    );
  } finally {
    text?.close();
    await Promise.all(running.map((w) => w.terminate()));
  }
  return partitions.map((p) => byPartition.get(p)!);
}
