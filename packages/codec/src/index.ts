/**
 * @twinlog/codec: the msgpack wire forms of twinlog. Events go through the schema-versioned
 * envelope ({@link encodeEvent} / {@link decodeEvent}); snapshots and other state through
 * deterministic plain msgpack ({@link encodeSnapshot} / {@link decodeSnapshot}). Decoding treats
 * bytes as hostile and throws only `TwinlogError`s with `CODEC_*` codes.
 */
export { encodeEvent, decodeEvent, safeDecodeEvent } from './encodeEvent.ts';
export type { DecodeOptions } from './encodeEvent.ts';
export { encodeSnapshot, decodeSnapshot } from './encodeSnapshot.ts';
export type { DecodeSnapshotOptions } from './encodeSnapshot.ts';
export { DEFAULT_EVENT_LIMITS, DEFAULT_SNAPSHOT_LIMITS } from './decodeLimits.ts';
export type { DecodeLimits, ResolvedDecodeLimits } from './decodeLimits.ts';
export { ENVELOPE_UPCASTERS } from './envelopeUpcasters.ts';
export type { Upcaster, Upcasters } from './envelopeUpcasters.ts';
export { encodeOutputRecord, decodeOutputRecord, OUTPUT_RECORD_VERSION } from './outputRecords.ts';
export type {
  InputOffsets,
  SourceRef,
  SnapshotRecord,
  CheckpointRecord,
  ChangeRecord,
  RejectionRecord,
  DeadLetterRecord,
  DeltaRecord,
  OutputRecord,
} from './outputRecords.ts';
