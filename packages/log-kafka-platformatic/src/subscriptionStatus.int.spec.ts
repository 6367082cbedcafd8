/**
 * What a subscription of the @platformatic/kafka log says through `status()` (core's
 * `RunStatus`), on a real broker: the tests every Kafka adapter passes
 * (`runSubscriptionStatusSpecs` of `@twinlog/log-kafka/testing`).
 */
import { runSubscriptionStatusSpecs } from '@twinlog/log-kafka/testing';
import { inject } from 'vitest';
import { createPlatformaticKafkaLog } from './index.ts';

runSubscriptionStatusSpecs('@platformatic/kafka', inject('kafkaBrokers'), 'tlp-standby', createPlatformaticKafkaLog);
