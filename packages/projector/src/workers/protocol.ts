/** Messages between the projector and its worker threads (docs/write-path.md, "Both cores"). */
import type { InputOffsets } from '@twinlog/codec';
import type { BatchStats, PassedTaskOptions } from '../partitionTask.ts';
import type { InputTopic } from '../topics.ts';
import type { PackedAppend, PackedRecords } from './packedRecords.ts';

export type WorkerRequest =
  | { readonly op: 'open'; readonly partition: number; readonly options: PassedTaskOptions }
  | { readonly op: 'restore'; readonly partition: number; readonly records: PackedRecords }
  | {
      readonly op: 'fold';
      readonly partition: number;
      readonly topic: InputTopic;
      readonly records: PackedRecords;
      readonly caughtUp: boolean;
    }
  | { readonly op: 'flush'; readonly partition: number }
  | { readonly op: 'settle'; readonly partition: number; readonly caughtUp: boolean }
  | { readonly op: 'close'; readonly partition: number };

/** What the worker says of a task after each request. */
export interface TaskReport {
  readonly pending: number;
  readonly hasParked: boolean;
  readonly resumeOffsets: InputOffsets;
}

export interface PackedOutput {
  readonly appends: PackedAppend[];
  readonly positions: InputOffsets;
  readonly stats: BatchStats;
  readonly rejectedByCode: Record<string, number>;
}

export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly report?: TaskReport; readonly output?: PackedOutput }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code?: string };
