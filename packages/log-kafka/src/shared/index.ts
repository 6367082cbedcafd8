/**
 * What the Kafka adapters share (`@twinlog/log-kafka/shared`): options and defaults, argument
 * checks and errors, record placement and request sizing, retries, and the per-key mutex of
 * transactions. Free of any Kafka client, so an adapter on another client loads no kafkajs.
 */
export * from './checks.ts';
export * from './errorChain.ts';
export * from './fences.ts';
export * from './KeyedMutex.ts';
export * from './options.ts';
export * from './partitionCounts.ts';
export * from './records.ts';
export * from './retry.ts';
