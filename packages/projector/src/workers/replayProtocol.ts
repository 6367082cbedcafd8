/** Messages between `replay` and its worker threads (docs/write-path.md, "Replay"). */
import type { AppendRecord, TwinStateDoc } from '@twinlog/core';
import type { AuditLinesJob } from '../auditEntry.ts';
import type { BatchStats, PassedTaskOptions } from '../partitionTask.ts';
import type { PartitionEnds, PartitionRange, WorkerLogSpec } from '../replay.ts';

/** The one request a replay worker gets: the partitions to fold, and how to open the log. */
export interface ReplayWorkerRequest {
  readonly workerLog: WorkerLogSpec;
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

export type ReplayWorkerMessage =
  /** Records read since the last message (progress). */
  | { readonly type: 'read'; readonly records: number }
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
