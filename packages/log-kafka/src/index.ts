/**
 * `@twinlog/log-kafka`: the `Log` port (`@twinlog/core`) on Apache Kafka through kafkajs, plus the
 * co-partitioned partition assigner it uses, for anyone consuming twinlog's topics with kafkajs
 * directly.
 */
export {
  createKafkaLog,
  type KafkaLog,
  type KafkaLogEntry,
  type KafkaLogLevel,
  type KafkaLogOptions,
  type KafkaSubscription,
} from './createKafkaLog.ts';
export { CO_PARTITIONED_ASSIGNER_NAME, coPartitionedAssigner } from './coPartitionedAssigner.ts';
