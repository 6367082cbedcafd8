export { startProjector } from './startProjector.ts';
export type { BatchDetail, Projector, ProjectorOptions } from './startProjector.ts';
export { DEFAULT_MAX_SNAPSHOT_BYTES, PartitionTask } from './partitionTask.ts';
export type { BatchStats, TaskOptions, TaskOutput } from './partitionTask.ts';
export {
  TOPICS,
  CHECKPOINT_KEY,
  DEFAULT_PARTITIONS,
  DEFAULT_OUTPUT_RETENTION,
  ensureTwinTopics,
  twinTopicSpecs,
  type TopicRetention,
  type TwinTopicOptions,
} from './topics.ts';
export type { InputTopic } from './topics.ts';
export { replay } from './replay.ts';
export { auditTrail, history } from './auditTrail.ts';
export type { AuditOptions, HistoryEntry } from './auditTrail.ts';
export { auditLines } from './auditLines.ts';
export type { AuditLinesOptions } from './auditLines.ts';
export type { AuditLineFactory, AuditLineSpec, AuditLinesJob, AuditLineWriter } from './auditEntry.ts';
export { byteSink, writeJson, writeText } from './jsonBytes.ts';
export type { ByteSink } from './jsonBytes.ts';
export { listTwins } from './listTwins.ts';
export type { ReplayOptions, ReplayResult, PartitionRange, WorkerLogSpec } from './replay.ts';
export { checkResumeGap } from './resumeGap.ts';
export type { ResumeGap } from './resumeGap.ts';
export { startPartitionStage } from './startPartitionStage.ts';
export { superviseOnNode } from './superviseOnNode.ts';
export { supervisePartitionStage } from './supervisePartitionStage.ts';
export type { PartitionStageSupervision } from './supervisePartitionStage.ts';
export type { PartitionStage, PartitionStageOptions } from './startPartitionStage.ts';
