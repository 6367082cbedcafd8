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

/** The input topics in a fixed order (their index stands for them where records are packed). */
export const INPUT_TOPICS: readonly InputTopic[] = ['backend', 'device'];

/** Key of the per-partition checkpoint record on `twin.snapshots` (never a valid device id). */
export const CHECKPOINT_KEY = '\u0000checkpoint';

/** Default partition count of every twin topic (all are co-partitioned). */
export const DEFAULT_PARTITIONS = 4;

/** A topic's retention (`TopicSpec.retentionMs` / `retentionBytes`; `-1` is unlimited). */
export interface TopicRetention {
  readonly retentionMs?: number;
  readonly retentionBytes?: number;
}

/**
 * Retention of the output feeds (`twin.changes`, `twin.rejections`, `twin.dead-letter`) unless
 * configured: Kafka's default `retention.ms` (7 days), and a cap of 256 MiB per partition that
 * Kafka does not set by default (`retention.bytes=-1`) but a log on one machine's disk needs.
 * The feeds are derived from the inputs, which are kept. See docs/storage.md.
 */
export const DEFAULT_OUTPUT_RETENTION: TopicRetention = Object.freeze({
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  retentionBytes: 256 * 1024 * 1024,
});

/** Options of {@link twinTopicSpecs}. */
export interface TwinTopicOptions {
  /** Retention of the output feeds (default {@link DEFAULT_OUTPUT_RETENTION}). */
  readonly outputRetention?: TopicRetention;
  /** Retention of the input topics (default: none, they are the source of truth and kept forever). */
  readonly inputRetention?: TopicRetention;
}

/**
 * Create the twin topics with one partition count: the inputs kept forever (unless
 * `inputRetention` says otherwise), `twin.snapshots` and `twin.deltas` compacted (latest per
 * device, so bounded by the fleet, not by time), the feeds retained by time and size.
 */
export function twinTopicSpecs(
  partitions = DEFAULT_PARTITIONS,
  { outputRetention = DEFAULT_OUTPUT_RETENTION, inputRetention = {} }: TwinTopicOptions = {},
): TopicSpec[] {
  return [
    { name: TOPICS.backend, partitions, ...inputRetention },
    { name: TOPICS.device, partitions, ...inputRetention },
    { name: TOPICS.snapshots, partitions, compacted: true },
    { name: TOPICS.changes, partitions, ...outputRetention },
    { name: TOPICS.rejections, partitions, ...outputRetention },
    { name: TOPICS.deadLetter, partitions, ...outputRetention },
    { name: TOPICS.deltas, partitions, compacted: true },
  ];
}

export async function ensureTwinTopics(
  log: Log,
  partitions = DEFAULT_PARTITIONS,
  options: TwinTopicOptions = {},
): Promise<void> {
  await log.ensureTopics(twinTopicSpecs(partitions, options));
}
