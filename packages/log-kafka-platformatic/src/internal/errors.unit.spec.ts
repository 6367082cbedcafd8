/** Classifying @platformatic/kafka's errors by the broker's error name, wherever the client nested it. */
import { describe, expect, it } from 'vitest';
import { isFencedError, isProducerStateError } from './errors.ts';

/** Shaped like the client's errors: a `ProtocolError` with `apiId`, gathered in `errors`. */
const protocol = (apiId: string): Error => Object.assign(new Error(apiId), { name: 'ProtocolError', apiId });
const gathered = (...errors: unknown[]): Error => Object.assign(new Error('Received response with error.'), { errors });

describe('errors', () => {
  it('recognises a producer whose sequence state the broker lost, apart from fencing', () => {
    expect(isProducerStateError(gathered(protocol('OUT_OF_ORDER_SEQUENCE_NUMBER')))).toBe(true);
    expect(isProducerStateError(gathered(gathered(protocol('UNKNOWN_PRODUCER_ID'))))).toBe(true);
    expect(isProducerStateError(protocol('INVALID_PRODUCER_EPOCH'))).toBe(false);
    expect(isFencedError(protocol('INVALID_PRODUCER_EPOCH'))).toBe(true);
    expect(isProducerStateError(new Error('OUT_OF_ORDER_SEQUENCE_NUMBER'))).toBe(false);
  });
});
