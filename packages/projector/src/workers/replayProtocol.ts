/** Messages between `replay` and its worker threads (docs/write-path.md, "Replay"). */
import type { AppendRecord, TwinStateDoc } from '@twinlog/core';
import type { PackedRecords } from './packedRecords.ts';
import type { AuditLinesJob } from '../auditEntry.ts';
import type { BatchStats, PassedTaskOptions } from '../partitionTask.ts';
import type { PartitionEnds, PartitionRange, WorkerLogSpec } from '../replay.ts';

/**
 * The request a replay worker gets first: the partitions to fold, and how to open the log — or, without
 * `workerLog`, none: the calling thread then reads and sends each partition's records as
 * {@link ReplayFeed} messages, in the order of `partitions`.
 */
export interface ReplayWorkerRequest {
  readonly workerLog?: WorkerLogSpec;
  readonly partitions: readonly { readonly partition: number; readonly ends: PartitionEnds }[];
  readonly until: number | undefined;
  readonly options: PassedTaskOptions;
  /** Send back the records a rebuild writes (`replay`'s `into`). */
  readonly into: boolean;
  /** Send back the states (as state documents). */
  readonly keepStates: boolean;
  /** Make these audit lines and send them back. */
  readonly audit?: AuditLinesJob;
}

/**
 * Records of the current partition, in fold order (`packRuns`; the bytes are transferred), or its
 * end. The worker answers each `runs` message with `taken` when it starts folding it: the caller
 * keeps only a few messages unanswered per worker (docs/write-path.md, "Replay on Kafka").
 */
export type ReplayFeed = { readonly type: 'runs'; readonly runs: PackedRecords } | { readonly type: 'end' };

export type ReplayWorkerMessage =
  /** Records read since the last message (progress). */
  | { readonly type: 'read'; readonly records: number }
  /** A `runs` message taken off the queue (a credit back to the feeding thread). */
  | { readonly type: 'taken' }
  /** Audit lines of a partition, in order, as UTF-8 (the buffer is transferred). */
  | { readonly type: 'lines'; readonly partition: number; readonly chunk: Uint8Array }
  /** One partition done: its counts, its states as state documents, in the task's order. */
  | {
      readonly type: 'partition';
      readonly range: PartitionRange;
      readonly stats: BatchStats;
      readonly read: number;
      /** How many twins the partition holds (sent whether or not `states` is). */
      readonly twins: number;
      readonly states: readonly (readonly [string, TwinStateDoc])[];
      readonly records?: readonly AppendRecord[];
    }
  | { readonly type: 'done' }
  | { readonly type: 'error'; readonly message: string };
