import { describe, expect, it } from 'vitest';
import {
  errorChain,
  isCoordinatorBusyError,
  isFencedError,
  isProducerStateError,
  isTransientError,
  isUnknownTopicError,
} from './kafkaErrors.ts';

/** Shaped like kafkajs's errors: a protocol error with `type`/`code`, wrapped through `cause`. */
const protocol = (type: string, code: number): Error =>
  Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type, code });
const wrapped = (cause: unknown): Error => Object.assign(new Error('KafkaJSNonRetriableError'), { cause });

describe('kafkaErrors', () => {
  it('recognises fencing by type or code, however deeply kafkajs wrapped it', () => {
    expect(isFencedError(protocol('INVALID_PRODUCER_EPOCH', 47))).toBe(true);
    expect(isFencedError(wrapped(wrapped(protocol('INVALID_PRODUCER_EPOCH', 47))))).toBe(true);
    expect(isFencedError(protocol('KAFKA_UNKNOWN_ERROR', 90))).toBe(true); // PRODUCER_FENCED, unnamed in kafkajs
    expect(
      isFencedError(
        Object.assign(new Error('aggregate'), { errors: [protocol('X', 1), protocol('PRODUCER_FENCED', 90)] }),
      ),
    ).toBe(true);
    expect(isFencedError(wrapped(protocol('CONCURRENT_TRANSACTIONS', 51)))).toBe(false);
    expect(isFencedError('INVALID_PRODUCER_EPOCH')).toBe(false);
    expect(isFencedError(undefined)).toBe(false);
  });

  it('recognises a producer whose sequence state the broker lost, however wrapped, and nothing else', () => {
    expect(isProducerStateError(wrapped(protocol('OUT_OF_ORDER_SEQUENCE_NUMBER', 45)))).toBe(true);
    expect(isProducerStateError(protocol('KAFKA_UNKNOWN_ERROR', 59))).toBe(true); // UNKNOWN_PRODUCER_ID by code
    expect(isProducerStateError(wrapped(protocol('DUPLICATE_SEQUENCE_NUMBER', 46)))).toBe(true);
    expect(isProducerStateError(protocol('INVALID_PRODUCER_EPOCH', 47))).toBe(false); // fencing, told apart
    expect(isProducerStateError(protocol('NOT_LEADER_FOR_PARTITION', 6))).toBe(false);
    expect(isProducerStateError(undefined)).toBe(false);
  });

  it('recognises unknown topics', () => {
    expect(isUnknownTopicError(wrapped(protocol('UNKNOWN_TOPIC_OR_PARTITION', 3)))).toBe(true);
    expect(isUnknownTopicError(protocol('LEADER_NOT_AVAILABLE', 5))).toBe(false);
  });

  it('recognises a transaction coordinator that is busy for now', () => {
    expect(isCoordinatorBusyError(protocol('CONCURRENT_TRANSACTIONS', 51))).toBe(true);
    expect(isCoordinatorBusyError(wrapped(protocol('GROUP_LOAD_IN_PROGRESS', 14)))).toBe(true);
    expect(isCoordinatorBusyError(protocol('INVALID_PRODUCER_EPOCH', 47))).toBe(false);
  });

  it('tells passing conditions (moving leaders and coordinators, dropped connections) from the rest', () => {
    expect(isTransientError(wrapped(protocol('GROUP_LOAD_IN_PROGRESS', 14)))).toBe(true);
    expect(isTransientError(protocol('NOT_LEADER_FOR_PARTITION', 6))).toBe(true);
    expect(isTransientError(Object.assign(new Error('ECONNREFUSED'), { name: 'KafkaJSConnectionError' }))).toBe(true);
    expect(isTransientError(protocol('UNKNOWN_TOPIC_OR_PARTITION', 3))).toBe(false);
    expect(isTransientError(protocol('INVALID_PRODUCER_EPOCH', 47))).toBe(false);
    expect(isTransientError(new Error('boom'))).toBe(false);
  });

  it('treats kafkajs fetchTopicOffsets tripping over a just-created topic as passing, and other TypeErrors not', () => {
    expect(
      isTransientError(new TypeError("Cannot destructure property 'partitions' of 'low.pop(...)' as it is undefined.")),
    ).toBe(true);
    expect(
      isTransientError(
        new TypeError("Cannot destructure property 'partitions' of 'high.pop(...)' as it is undefined."),
      ),
    ).toBe(true);
    expect(isTransientError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(false);
  });

  it('walks a cyclic cause chain once', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = wrapped(a);
    a.cause = b;
    expect(errorChain(a)).toEqual([a, b]);
  });
});
