export { startProjector } from './startProjector.ts';
export type { Projector, ProjectorOptions } from './startProjector.ts';
export { PartitionTask } from './partitionTask.ts';
export type { BatchStats, TaskOptions, TaskOutput } from './partitionTask.ts';
export { TOPICS, CHECKPOINT_KEY, DEFAULT_PARTITIONS, ensureTwinTopics, twinTopicSpecs } from './topics.ts';
export type { InputTopic } from './topics.ts';
export { replay, history } from './replay.ts';
export type { ReplayOptions, ReplayResult, PartitionRange, HistoryEntry } from './replay.ts';
