/** twinlog's topics (logical names: the log adapter adds the deployment's prefix). */
import type { Log, TopicSpec } from '@twinlog/core';

export const TOPICS = {
  backend: 'twin.backend',
  device: 'twin.device',
  snapshots: 'twin.snapshots',
  changes: 'twin.changes',
  rejections: 'twin.rejections',
  deadLetter: 'twin.dead-letter',
  deltas: 'twin.deltas',
} as const;

export type InputTopic = 'backend' | 'device';

/** Key of the per-partition checkpoint record on `twin.snapshots` (never a valid device id). */
export const CHECKPOINT_KEY = '\u0000checkpoint';

/** Default partition count of every twin topic (all are co-partitioned). */
export const DEFAULT_PARTITIONS = 4;

/**
 * Create the twin topics with one partition count: inputs time-retained, `twin.snapshots` and
 * `twin.deltas` compacted (latest per device), the feeds time-retained.
 */
export function twinTopicSpecs(partitions = DEFAULT_PARTITIONS): TopicSpec[] {
  return [
    { name: TOPICS.backend, partitions },
    { name: TOPICS.device, partitions },
    { name: TOPICS.snapshots, partitions, compacted: true },
    { name: TOPICS.changes, partitions },
    { name: TOPICS.rejections, partitions },
    { name: TOPICS.deadLetter, partitions },
    { name: TOPICS.deltas, partitions, compacted: true },
  ];
}

export async function ensureTwinTopics(log: Log, partitions = DEFAULT_PARTITIONS): Promise<void> {
  await log.ensureTopics(twinTopicSpecs(partitions));
}
