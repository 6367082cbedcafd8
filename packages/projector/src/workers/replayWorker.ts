/**
 * A replay worker thread (docs/write-path.md, "Replay"): opens the log named in its one request,
 * folds its partitions one after another with `replayPartition` (the same code a replay in the
 * calling thread runs), and posts each partition's result.
 */
import { parentPort } from 'node:worker_threads';
import { createHybridClock, toStateDoc, type Log } from '@twinlog/core';
import { lineCollector } from '../auditEntry.ts';
import { rebuildRecords, replayPartition } from '../replay.ts';
import type { ReplayWorkerMessage, ReplayWorkerRequest } from './replayProtocol.ts';

const port = parentPort!;
const post = (m: ReplayWorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

port.once('message', (request: ReplayWorkerRequest) => {
  run(request).then(
    () => post({ type: 'done' }),
    (e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
  );
});

async function run({
  workerLog,
  partitions,
  until,
  options,
  into,
  keepStates,
  audit,
}: ReplayWorkerRequest): Promise<void> {
  const mod = (await import(workerLog.module)) as Record<string, unknown>;
  const factory = mod[workerLog.export];
  if (typeof factory !== 'function') throw new Error(`${workerLog.module} has no function ${workerLog.export}`);
  const log = await (factory as (options: unknown) => Log | Promise<Log>)(workerLog.options);
  try {
    const clock = createHybridClock({ physicalNow: () => 0 });
    for (const { partition, ends } of partitions) {
      const collector =
        audit === undefined
          ? undefined
          : await lineCollector(audit, (chunk) =>
              post({ type: 'lines', partition, chunk }, [chunk.buffer as ArrayBuffer]),
            );
      const r = await replayPartition({
        log,
        partition,
        ends,
        until,
        options,
        clock,
        onRead: (records) => post({ type: 'read', records }),
        ...(collector === undefined ? {} : { onApplied: collector.onApplied }),
      });
      collector?.flush();
      const records = into ? rebuildRecords(r.task, r.range, ends) : undefined;
      const held = [...r.task.states()];
      const states = keepStates ? held.map(([id, state]) => [id, toStateDoc(state)] as const) : [];
      const transfer =
        records === undefined
          ? []
          : records.flatMap((x) =>
              x.value === null || x.value.byteOffset !== 0 || x.value.byteLength !== x.value.buffer.byteLength
                ? []
                : [x.value.buffer as ArrayBuffer],
            );
      post(
        {
          type: 'partition',
          range: r.range,
          stats: r.stats,
          read: r.read,
          twins: held.length,
          states,
          ...(records === undefined ? {} : { records }),
        },
        transfer,
      );
    }
  } finally {
    await log.close();
  }
}
