/**
 * A replay worker thread (docs/write-path.md, "Replay"): opens the log named in its request (or
 * takes the records the calling thread sends), folds its partitions one after another with
 * `replayPartition` (the same code a replay in the calling thread runs), and posts each partition's
 * result.
 */
import { parentPort } from 'node:worker_threads';
import { createHybridClock, toStateDoc, type Log } from '@twinlog/core';
import { lineCollector } from '../auditEntry.ts';
import { rebuildRecords, replayPartition, type InputRuns } from '../replay.ts';
import type { ReplayFeed, ReplayWorkerMessage, ReplayWorkerRequest } from './replayProtocol.ts';

const port = parentPort!;
const post = (m: ReplayWorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

/** The feed messages not yet taken, and the fold waiting for the next one. */
const queued: ReplayFeed[] = [];
let waiting: ((m: ReplayFeed) => void) | undefined;
let started = false;

port.on('message', (m: ReplayWorkerRequest | ReplayFeed) => {
  if (!started) {
    started = true;
    run(m as ReplayWorkerRequest).then(
      () => post({ type: 'done' }),
      (e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  } else if (waiting !== undefined) {
    const take = waiting;
    waiting = undefined;
    take(m as ReplayFeed);
  } else queued.push(m as ReplayFeed);
});

const nextFeed = (): Promise<ReplayFeed> =>
  queued.length > 0 ? Promise.resolve(queued.shift()!) : new Promise((resolve) => (waiting = resolve));

/** One partition's records as the calling thread sends them (packed), until its `end`. */
async function* fed(): InputRuns {
  for (;;) {
    const m = await nextFeed();
    if (m.type === 'end') return;
    post({ type: 'taken' });
    yield m.runs;
  }
}

async function run({
  workerLog,
  partitions,
  until,
  options,
  into,
  keepStates,
  audit,
}: ReplayWorkerRequest): Promise<void> {
  const log = workerLog === undefined ? undefined : await openLog(workerLog);
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
        ...(log === undefined ? { runs: fed() } : { log }),
        partition,
        ends,
        until,
        options,
        clock,
        onRead: (records) => post({ type: 'read', records }),
        ...(collector === undefined ? {} : { onApplied: collector.onApplied, onWindow: collector.endWindow }),
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
    await log?.close();
  }
}

async function openLog({ module, export: name, options }: NonNullable<ReplayWorkerRequest['workerLog']>): Promise<Log> {
  const factory = ((await import(module)) as Record<string, unknown>)[name];
  if (typeof factory !== 'function') throw new Error(`${module} has no function ${name}`);
  return (factory as (options: unknown) => Log | Promise<Log>)(options);
}
