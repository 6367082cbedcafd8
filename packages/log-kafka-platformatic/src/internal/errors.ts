/**
 * Classifying @platformatic/kafka errors. The client reports a broker's answer as a
 * `ProtocolError` (`apiId` the broker's error name, `apiCode` its number, `canRetry`), gathers
 * several in a `ResponseError` / `MultipleErrors` (`errors`), and wraps retried failures the same
 * way, so a classifier walks the whole tree.
 */
import { errorChain } from '@twinlog/log-kafka/shared';

/** Every error in `e`'s cause/aggregate tree, `e` first (cycles skipped, at most 64). */
export const errorTree = (e: unknown): unknown[] => errorChain(e, 64);

const apiIdOf = (x: unknown): string | undefined =>
  typeof x === 'object' && x !== null && typeof (x as { apiId?: unknown }).apiId === 'string'
    ? (x as { apiId: string }).apiId
    : undefined;

/** True when some error in `e`'s tree is the broker answering with one of `ids`. */
export function hasApiError(e: unknown, ids: ReadonlySet<string>): boolean {
  return errorTree(e).some((x) => {
    const id = apiIdOf(x);
    return id !== undefined && ids.has(id);
  });
}

const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);
/** True when `e` says a newer producer with the same transactional id took over. */
export const isFencedError = (e: unknown): boolean => hasApiError(e, FENCED);

const PRODUCER_STATE = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'DUPLICATE_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID']);
/** True when the broker no longer accepts the producer's sequence numbers: a clean abort does not make it usable again. */
export const isProducerStateError = (e: unknown): boolean => hasApiError(e, PRODUCER_STATE);

const BUSY = new Set([
  'CONCURRENT_TRANSACTIONS',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
]);
/** True when the transaction or group coordinator is busy (finishing the previous transaction, loading, moving). */
export const isCoordinatorBusyError = (e: unknown): boolean => hasApiError(e, BUSY);

const UNKNOWN_TOPIC = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID']);
/** True when the broker (or the client's metadata lookup, which says `Unknown topic <name>.`) reports no such topic. */
export const isUnknownTopicError = (e: unknown): boolean =>
  hasApiError(e, UNKNOWN_TOPIC) ||
  errorTree(e).some(
    (x) =>
      x instanceof Error && (x as { code?: unknown }).code === 'PLT_KFK_USER' && x.message.startsWith('Unknown topic '),
  );

const EXISTS = new Set(['TOPIC_ALREADY_EXISTS']);
export const isTopicExistsError = (e: unknown): boolean => hasApiError(e, EXISTS);

const OUT_OF_RANGE = new Set(['OFFSET_OUT_OF_RANGE']);
export const isOffsetOutOfRangeError = (e: unknown): boolean => hasApiError(e, OUT_OF_RANGE);

const TRANSIENT = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'UNSTABLE_OFFSET_COMMIT',
]);
/** The client's own codes for a connection that failed or a request that timed out. */
const TRANSIENT_CODES = new Set(['PLT_KFK_NETWORK', 'PLT_KFK_TIMEOUT']);

/**
 * True when `e` is a condition that passes by itself: a leader or coordinator moving or loading,
 * a connection dropped, a request timed out. Read-only calls retry these.
 */
export function isTransientError(e: unknown): boolean {
  return errorTree(e).some((x) => {
    const id = apiIdOf(x);
    if (id !== undefined && TRANSIENT.has(id)) return true;
    const code = typeof x === 'object' && x !== null ? (x as { code?: unknown }).code : undefined;
    return typeof code === 'string' && TRANSIENT_CODES.has(code);
  });
}
