/**
 * A projector worker thread: it holds the `PartitionTask`s of the partitions it was given and does
 * their CPU work — decoding, folding, encoding snapshots and output records — while the main thread
 * consumes and commits (docs/write-path.md, "Both cores"). Its clock is the system clock.
 */
import { parentPort } from 'node:worker_threads';
import { createHybridClock } from '@twinlog/core';
import { PartitionTask, type TaskOutput } from '../partitionTask.ts';
import { TOPICS } from '../topics.ts';
import { packAppends, transfers, unpackLogRecords } from './packedRecords.ts';
import type { PackedOutput, TaskReport, WorkerRequest, WorkerResponse } from './protocol.ts';

const port = parentPort;
if (port === null) throw new Error('projectorWorker runs in a worker thread');
const clock = createHybridClock({ physicalNow: () => Date.now() });
const tasks = new Map<number, PartitionTask>();

const taskOf = (partition: number): PartitionTask => {
  const task = tasks.get(partition);
  if (task === undefined) throw new Error(`worker: partition ${partition} is not open here`);
  return task;
};

const report = (task: PartitionTask): TaskReport => ({
  pending: task.pending,
  hasParked: task.hasParked,
  resumeOffsets: task.resumeOffsets,
});

const packed = (out: TaskOutput): PackedOutput => ({
  appends: packAppends(out.appends),
  positions: out.positions,
  stats: out.stats,
  rejectedByCode: { ...out.rejectedByCode },
});

const reply = (message: WorkerResponse, output?: PackedOutput): void => {
  port.postMessage(message, output === undefined ? [] : transfers(output.appends.map((a) => a.records)));
};

port.on('message', ({ id, request }: { id: number; request: WorkerRequest }) => {
  try {
    switch (request.op) {
      case 'open': {
        const task = new PartitionTask({ partition: request.partition, clock, ...request.options });
        tasks.set(request.partition, task);
        return reply({ id, ok: true, report: report(task) });
      }
      case 'restore': {
        const task = taskOf(request.partition);
        for (const r of unpackLogRecords(request.records, TOPICS.snapshots, request.partition)) task.restoreRecord(r);
        return reply({ id, ok: true, report: report(task) });
      }
      case 'fold': {
        const task = taskOf(request.partition);
        const topic = request.topic === 'backend' ? TOPICS.backend : TOPICS.device;
        task.fold(request.topic, unpackLogRecords(request.records, topic, request.partition), request.caughtUp);
        return reply({ id, ok: true, report: report(task) });
      }
      case 'flush': {
        const task = taskOf(request.partition);
        const output = packed(task.flush());
        return reply({ id, ok: true, report: report(task), output }, output);
      }
      case 'settle': {
        const task = taskOf(request.partition);
        const out = task.settle(request.caughtUp);
        const output = out === undefined ? undefined : packed(out);
        return reply({ id, ok: true, report: report(task), ...(output === undefined ? {} : { output }) }, output);
      }
      case 'close':
        tasks.delete(request.partition);
        return reply({ id, ok: true });
    }
  } catch (e) {
    const code = typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : undefined;
    reply({
      id,
      ok: false,
      message: e instanceof Error ? (e.stack ?? e.message) : String(e),
      ...(code === undefined ? {} : { code }),
    });
  }
});
