/**
 * The reconciler's checkpoint on `twin.deltas` *p* (docs/formats.md, "Reconciler checkpoints";
 * docs/architecture.md, "Restore and resume"): written with every commit of a batch or a sweep,
 * it says up to which position of `twin.snapshots` *p* the deltas on `twin.deltas` *p* reflect the
 * snapshots, for one consumer group. A restore reads the last one of its group, and the first batch
 * after it checks that the consumer did not resume past it.
 *
 * Encoding: key `CHECKPOINT_KEY` (`\u0000checkpoint`, never a device id), the explicit partition,
 * the position (the next offset of `twin.snapshots` *p* not yet reflected) in the header
 * `twinlog-snapshots-position` as a decimal, the group in `twinlog-group`, and a one-byte value
 * (msgpack `nil`): not `null`, which would be a tombstone that compaction eventually deletes.
 * `twin.deltas` is compacted, so one checkpoint per partition is kept: the last written, whichever
 * group wrote it.
 */
import type { AppendRecord, LogRecord } from '@twinlog/core';
import { CHECKPOINT_KEY } from '@twinlog/projector';

/** Header of a reconciler checkpoint: the next offset of `twin.snapshots` *p* its deltas do not reflect. */
export const POSITION_HEADER = 'twinlog-snapshots-position';
/** Header of a reconciler checkpoint: the consumer group whose position it is. */
export const GROUP_HEADER = 'twinlog-group';

const VALUE = Uint8Array.of(0xc0);

/** The checkpoint record to append to `twin.deltas` *partition* with a commit. */
export function checkpointRecord(partition: number, group: string, position: number): AppendRecord {
  return {
    key: CHECKPOINT_KEY,
    partition,
    value: VALUE,
    headers: { [POSITION_HEADER]: String(position), [GROUP_HEADER]: group },
  };
}

/**
 * The position a record of `twin.deltas` holds if it is a checkpoint of `group`; `undefined` for
 * any other record (a delta, a tombstone, another group's checkpoint, a malformed one).
 */
export function checkpointOf(r: LogRecord, group: string): number | undefined {
  if (r.key !== CHECKPOINT_KEY || r.headers[GROUP_HEADER] !== group) return undefined;
  const text = r.headers[POSITION_HEADER] ?? '';
  const position = Number(text);
  return /^[0-9]+$/.test(text) && Number.isSafeInteger(position) ? position : undefined;
}
