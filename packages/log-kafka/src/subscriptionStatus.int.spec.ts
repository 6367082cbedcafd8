/**
 * What a subscription of the kafkajs log says through `status()` (core's `RunStatus`), on a real
 * broker: the tests every Kafka adapter passes (`runSubscriptionStatusSpecs`).
 */
import { inject } from 'vitest';
import { createKafkaLog } from './index.ts';
import { runSubscriptionStatusSpecs } from './testing/index.ts';

runSubscriptionStatusSpecs('kafkajs', inject('kafkaBrokers'), 'tl-standby', createKafkaLog);
