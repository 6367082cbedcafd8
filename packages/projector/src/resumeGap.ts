/**
 * The check a consuming stage makes of the first batch after a restore (docs/architecture.md,
 * "Restore and resume"). Its state and checkpoint are restored from its output topic read up to the
 * last stable offset, then its consumer starts at the group's committed offsets. One transaction
 * writes both, but their commit markers become visible separately, so a restore can miss the last
 * transaction while the consumer starts after its input records. The first batch shows where the
 * consumer started; past the checkpoint with records in between, the run must stop and restore
 * again rather than go on without them.
 */
import { TwinlogError, type Log, type LogRecord, type TwinlogErrorCode } from '@twinlog/core';

export interface ResumeGap {
  readonly topic: string;
  readonly partition: number;
  /** The restored checkpoint: the first input offset the restored state does not reflect. */
  readonly checkpoint: number;
  /** The offset of the first record of the first batch since the restore. */
  readonly first: number;
  /** The retryable code to stop with. */
  readonly code: TwinlogErrorCode;
  /** What the records in between are, for the message (e.g. `records the restored state has not folded`). */
  readonly unreflected: string;
  /** Which records in between count (default: all; e.g. not the stage's own checkpoints). */
  readonly counts?: (r: LogRecord) => boolean;
}

/**
 * Throws a retryable `code` when `first` is past `checkpoint` and `topic` holds a counted record in
 * between; positions without records (commit markers, aborted records) may lie there harmlessly.
 *
 * @example
 * await checkResumeGap(log, { topic, partition, checkpoint, first: records[0].offset, code: 'PROJECTOR_RESUME_AHEAD', unreflected: 'records the restored state has not folded' })
 */
export async function checkResumeGap(
  log: Log,
  { topic, partition, checkpoint, first, code, unreflected, counts }: ResumeGap,
): Promise<void> {
  if (first <= checkpoint) return;
  let missed = 0;
  for await (const records of log.read(topic, partition, { from: checkpoint, to: first })) {
    if (counts === undefined) missed += records.length;
    else for (const r of records) if (counts(r)) missed++;
  }
  if (missed === 0) return;
  throw new TwinlogError(
    code,
    // the code is in the text too: it is what /health and the logs show as the restart's reason
    `${topic} partition ${partition}: the consumer resumed at offset ${first}, after ${missed} ${unreflected} (checkpoint at ${checkpoint}); restoring again (${code})`,
    { canRetry: true, details: { topic, partition, checkpoint, resumedAt: first, missed } },
  );
}
