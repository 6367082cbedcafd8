/**
 * Classifying kafkajs errors. kafkajs wraps protocol errors (`KafkaJSProtocolError`, with the
 * broker's `type` and numeric `code`) in retry wrappers (`KafkaJSNonRetriableError`,
 * `KafkaJSNumberOfRetriesExceeded`) through `cause`, and batches them in `KafkaJSAggregateError`
 * (`errors`), so a classifier walks the whole chain.
 */
import { errorChain as walk } from '../shared/errorChain.ts';

/** Broker error codes that mean "another producer with this transactional id is newer". */
const FENCED_CODES = new Set([
  47, // INVALID_PRODUCER_EPOCH: what brokers answer old request versions (kafkajs's) when fenced
  90, // PRODUCER_FENCED: newer request versions; kafkajs 2.2.4 does not know its name
]);
const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);

/** Every error in `e`'s cause/aggregate chain, `e` first (cycles skipped, at most 32). */
export const errorChain = (e: unknown): unknown[] => walk(e, 32);

/** True when some error in `e`'s chain is a broker answer with one of `types` or `codes`. */
function hasBrokerError(e: unknown, types: ReadonlySet<string>, codes: ReadonlySet<number>): boolean {
  return errorChain(e).some((x) => {
    if (typeof x !== 'object' || x === null) return false;
    const { type, code } = x as { type?: unknown; code?: unknown };
    return (typeof type === 'string' && types.has(type)) || (typeof code === 'number' && codes.has(code));
  });
}

/** True when `e` (or anything it wraps) says the producer's epoch was bumped by a newer producer. */
export function isFencedError(e: unknown): boolean {
  return hasBrokerError(e, FENCED_TYPES, FENCED_CODES);
}

/**
 * Codes after which the broker and the producer disagree on the producer's sequence numbers: an
 * idempotent kafkajs producer cannot recover from that (it has no epoch bump), so even after a
 * clean abort it must be replaced by a new one, whose `InitProducerId` starts a fresh sequence.
 */
const PRODUCER_STATE_CODES = new Set([
  45, // OUT_OF_ORDER_SEQUENCE_NUMBER
  46, // DUPLICATE_SEQUENCE_NUMBER
  59, // UNKNOWN_PRODUCER_ID
]);
const PRODUCER_STATE_TYPES = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'DUPLICATE_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
]);

/** True when `e` (or anything it wraps) says the producer's sequence state is lost (seen after long broker outages). */
export function isProducerStateError(e: unknown): boolean {
  return hasBrokerError(e, PRODUCER_STATE_TYPES, PRODUCER_STATE_CODES);
}

/** True when `e` (or anything it wraps) is the broker saying the topic or partition does not exist. */
export function isUnknownTopicError(e: unknown): boolean {
  return errorChain(e).some(
    (x) => typeof x === 'object' && x !== null && (x as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION',
  );
}

/**
 * Codes a transaction step may meet while the coordinator is still busy (finishing the previous
 * transaction's markers, or loading its state after a restart): retry the step.
 */
const BUSY_CODES = new Set([
  51, // CONCURRENT_TRANSACTIONS
  14, // COORDINATOR_LOAD_IN_PROGRESS (kafkajs: GROUP_LOAD_IN_PROGRESS)
]);

/** True when `e` (or anything it wraps) says the transaction coordinator is busy for now. */
export function isCoordinatorBusyError(e: unknown): boolean {
  return errorChain(e).some(
    (x) => typeof x === 'object' && x !== null && BUSY_CODES.has((x as { code?: unknown }).code as number),
  );
}

/** Broker errors that go away by themselves (leaders and coordinators moving or loading, timeouts). */
const TRANSIENT_TYPES = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'GROUP_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
]);
/** kafkajs's own errors for a connection that failed or a request that timed out. */
const TRANSIENT_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
]);

/**
 * True when `e` (or anything it wraps) is a condition that passes by itself: a leader or group
 * coordinator moving or loading (e.g. on a broker that just started), a connection dropped, a
 * request timed out. Read-only calls retry these; an unknown topic is not one of them.
 */
export function isTransientError(e: unknown): boolean {
  return errorChain(e).some((x) => {
    if (typeof x !== 'object' || x === null) return false;
    // kafkajs 2.2.4's admin.fetchTopicOffsets throws this TypeError when a ListOffsets response
    // lacks the topic, as happens right after the topic was created (leaders not yet known).
    if (
      x instanceof TypeError &&
      /Cannot destructure property 'partitions' of '(low|high)\.pop\(\.\.\.\)'/.test(x.message)
    )
      return true;
    const { type, name } = x as { type?: unknown; name?: unknown };
    return (
      (typeof type === 'string' && TRANSIENT_TYPES.has(type)) || (typeof name === 'string' && TRANSIENT_NAMES.has(name))
    );
  });
}
