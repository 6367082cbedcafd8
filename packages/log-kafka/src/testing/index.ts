/**
 * Test support of the Kafka adapters (`@twinlog/log-kafka/testing`): the integration tests every
 * Kafka adapter runs, and the fixtures of its own tests. Not for production.
 */
export * from './kafkaTestRun.ts';
export * from './kafkaLogSpecs.ts';
export * from './subscriptionStatusSpecs.ts';
