/**
 * The records the projector and reconciler write, and their wire form: deterministic msgpack
 * ({@link encodeSnapshot}) of a plain object carrying `kind` and `v`. Keys are the device id.
 *
 * | topic | kind | value |
 * |---|---|---|
 * | `twin.snapshots` | `snapshot` | the CRDT state document (render it with core's `renderTwin(fromStateDoc(state))`), whether the twin exists, its versions, and the input offsets of its partition it reflects |
 * | `twin.snapshots` | `checkpoint` | the partition's input offsets after a batch (key `\u0000checkpoint`, explicit partition) |
 * | `twin.changes` | `change` | IoT Hub's twin change notification shape: what one applied event changed |
 * | `twin.rejections` | `rejection` | a record that decoded but was refused, with the reason code |
 * | `twin.dead-letter` | `dead-letter` | bytes that could not be decoded, with the reason and source |
 * | `twin.deltas` | `delta` | a device's desired-versus-reported state, when it changes |
 */
import { isPlainObject, TwinlogError, type DeltaState, type JsonObject, type TwinStateDoc } from '@twinlog/core';
import { decodeSnapshot, encodeTrustedSnapshot } from './encodeSnapshot.ts';

export const OUTPUT_RECORD_VERSION = 1;

/** Input positions of one partition: the next offset of each input topic. */
export interface InputOffsets {
  readonly backend: number;
  readonly device: number;
}

export interface SourceRef {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export interface SnapshotRecord {
  readonly kind: 'snapshot';
  readonly v: number;
  readonly deviceId: string;
  readonly state: TwinStateDoc;
  readonly exists: boolean;
  readonly version: number;
  readonly offsets: InputOffsets;
}

export interface CheckpointRecord {
  readonly kind: 'checkpoint';
  readonly v: number;
  readonly partition: number;
  readonly offsets: InputOffsets;
}

export interface ChangeRecord {
  readonly kind: 'change';
  readonly v: number;
  readonly deviceId: string;
  /** IoT Hub's `opType`. */
  readonly opType: 'updateTwin' | 'replaceTwin' | 'createDeviceIdentity' | 'deleteDeviceIdentity';
  /** The event that caused it. */
  readonly id: { readonly writer: string; readonly seq: number };
  readonly section: string;
  readonly actor: string;
  /** HLC wall of the event, ms. */
  readonly wall: number;
  readonly counter: number;
  /** The RFC 7396 difference of the section before and after (removed keys are `null`). */
  readonly diff: JsonObject;
  readonly version: number;
  readonly desiredVersion: number;
  readonly reportedVersion: number;
  readonly corr?: string;
  readonly source: SourceRef;
}

export interface RejectionRecord {
  readonly kind: 'rejection';
  readonly v: number;
  readonly deviceId: string;
  readonly code: string;
  readonly message: string;
  readonly id: { readonly writer: string; readonly seq: number } | null;
  readonly corr?: string;
  /** The twin's etag when a command was rejected (null when the twin does not exist). */
  readonly etag?: string | null;
  /**
   * With code `DUPLICATE_WRITE`: the id of the applied write this one retried, and the twin's
   * versions when the retry was answered (docs/idempotency.md).
   */
  readonly duplicateOf?: { readonly writer: string; readonly seq: number };
  readonly version?: number;
  readonly desiredVersion?: number;
  readonly reportedVersion?: number;
  readonly source: SourceRef;
}

export interface DeadLetterRecord {
  readonly kind: 'dead-letter';
  readonly v: number;
  readonly key: string;
  readonly code: string;
  readonly message: string;
  readonly bytes: Uint8Array | null;
  readonly source: SourceRef;
}

export interface DeltaRecord {
  readonly kind: 'delta';
  readonly v: number;
  readonly deviceId: string;
  readonly delta: DeltaState;
  /** Offset of the snapshot that produced it. */
  readonly source: SourceRef;
}

export type OutputRecord =
  SnapshotRecord | CheckpointRecord | ChangeRecord | RejectionRecord | DeadLetterRecord | DeltaRecord;

/**
 * Encode an output record (deterministic bytes). Output records are built by twinlog from
 * validated data, so they skip the input checks of `encodeSnapshot`; `undefined` members are
 * left out.
 */
export function encodeOutputRecord(record: OutputRecord): Uint8Array {
  return encodeTrustedSnapshot(record);
}

/**
 * Decode an output record of the expected kind.
 * @throws {TwinlogError} `CODEC_*` for undecodable bytes; `CODEC_BAD_DATA` for another kind.
 */
export function decodeOutputRecord<K extends OutputRecord['kind']>(
  bytes: Uint8Array,
  kind: K,
): Extract<OutputRecord, { kind: K }> {
  const value = decodeSnapshot(bytes);
  if (!isPlainObject(value) || value['kind'] !== kind) {
    throw new TwinlogError('CODEC_BAD_DATA', `expected a ${kind} record`);
  }
  if (typeof value['v'] !== 'number' || value['v'] > OUTPUT_RECORD_VERSION) {
    throw new TwinlogError('CODEC_UNSUPPORTED_VERSION', `unsupported ${kind} record version ${String(value['v'])}`);
  }
  return value as unknown as Extract<OutputRecord, { kind: K }>;
}
