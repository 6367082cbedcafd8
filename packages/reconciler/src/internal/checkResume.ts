/**
 * The reconciler's check of where its consumer resumed (docs/architecture.md, "Restore and
 * resume"). A partition's deltas and checkpoint are restored from `twin.deltas` read committed up
 * to the last stable offset, then its consumer starts at the group's committed offsets. One
 * transaction writes both, but their commit markers become visible separately, so a restore can
 * miss the last transaction while the consumer starts after its snapshot records: evaluating on
 * would compare later snapshots with stale deltas, and suppress or emit the wrong ones.
 */
import { TwinlogError, type Log } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';

/** What the check needs of a restored partition. */
export interface ResumeCheckTask {
  readonly partition: number;
  /** The restored checkpoint: the next snapshot position the deltas do not reflect (undefined: none). */
  readonly checkpoint: number | undefined;
}

/**
 * Called with the offset of the first record of the first batch since the restore. Throws a
 * retryable `RECONCILER_RESUME_AHEAD` when that is past the checkpoint and a snapshot record lies
 * in between (commit markers, aborted records and the projector's checkpoints may lie there
 * harmlessly: the reconciler skips them anyway); the supervisor's restart then restores again.
 * Without a checkpoint (a fresh topic, or deltas written before checkpoints existed) it checks nothing.
 */
export async function checkResume(log: Log, task: ResumeCheckTask, first: number): Promise<void> {
  const from = task.checkpoint;
  if (from === undefined || first <= from) return;
  let missed = 0;
  for await (const records of log.read(TOPICS.snapshots, task.partition, { from, to: first })) {
    for (const r of records) if (r.key !== CHECKPOINT_KEY) missed++;
  }
  if (missed === 0) return;
  throw new TwinlogError(
    'RECONCILER_RESUME_AHEAD',
    // the code is in the text too: it is what /health and the logs show as the restart's reason
    `${TOPICS.snapshots} partition ${task.partition}: the consumer resumed at offset ${first}, after ${missed} snapshot records the restored deltas do not reflect (their checkpoint is at ${from}); restoring again (RECONCILER_RESUME_AHEAD)`,
    {
      canRetry: true,
      details: { topic: TOPICS.snapshots, partition: task.partition, checkpoint: from, resumedAt: first, missed },
    },
  );
}
