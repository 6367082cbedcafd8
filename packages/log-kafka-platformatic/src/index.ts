/**
 * `@twinlog/log-kafka-platformatic`: the `Log` port (`@twinlog/core`) on Apache Kafka through
 * @platformatic/kafka 1.x, the alternative to `@twinlog/log-kafka` (kafkajs).
 */
export {
  createPlatformaticKafkaLog,
  type PlatformaticKafkaLog,
  type PlatformaticKafkaLogOptions,
  type PlatformaticLogEntry,
  type PlatformaticSubscription,
} from './createPlatformaticKafkaLog.ts';
