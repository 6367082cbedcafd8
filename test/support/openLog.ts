/**
 * Open the `Log` a test or a test child process should use, from its environment:
 * `TWINLOG_LOG=kafka` (with `KAFKA_BROKERS` and `TWINLOG_TOPIC_PREFIX`) or
 * `TWINLOG_LOG=embedded` (with `TWINLOG_DB`, a SQLite file path). On Kafka,
 * `TWINLOG_KAFKA_CLIENT=platformatic` opens the @platformatic/kafka adapter instead of kafkajs's,
 * so the Kafka tests that open their logs here run on either client (child processes inherit it).
 */
import type { Log } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createKafkaLog } from '@twinlog/log-kafka';
import { createPlatformaticKafkaLog } from '@twinlog/log-kafka-platformatic';

export interface LogTarget {
  readonly kind: 'kafka' | 'embedded';
  /** Kafka: topic prefix; embedded: database path. */
  readonly where: string;
}

export function targetEnv(target: LogTarget): Record<string, string> {
  return target.kind === 'kafka'
    ? {
        TWINLOG_LOG: 'kafka',
        TWINLOG_TOPIC_PREFIX: target.where,
        KAFKA_BROKERS: process.env['KAFKA_BROKERS'] ?? '',
        ...(process.env['TWINLOG_KAFKA_CLIENT'] === undefined
          ? {}
          : { TWINLOG_KAFKA_CLIENT: process.env['TWINLOG_KAFKA_CLIENT'] }),
      }
    : { TWINLOG_LOG: 'embedded', TWINLOG_DB: target.where };
}

export function openLog(target: LogTarget): Log {
  if (target.kind === 'kafka') {
    const brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter(Boolean);
    if (brokers.length === 0)
      throw new Error('KAFKA_BROKERS is not set: the int tier starts a broker in its global setup');
    if (process.env['TWINLOG_KAFKA_CLIENT'] === 'platformatic')
      return createPlatformaticKafkaLog({ brokers, topicPrefix: target.where });
    return createKafkaLog({ brokers, topicPrefix: target.where });
  }
  return createEmbeddedLog({ path: target.where });
}

export function openLogFromEnv(): Log {
  const kind = process.env['TWINLOG_LOG'];
  if (kind === 'kafka') return openLog({ kind, where: process.env['TWINLOG_TOPIC_PREFIX'] ?? '' });
  if (kind === 'embedded') return openLog({ kind, where: process.env['TWINLOG_DB'] ?? '' });
  throw new Error(`TWINLOG_LOG must be kafka or embedded, got ${String(kind)}`);
}
