import { isTwinlogError } from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import { KAFKA_LOG_DEFAULTS, kafkaLogSettings } from './options.ts';

describe('kafkaLogSettings', () => {
  it('fills in every default, and an option given as undefined takes its default too', () => {
    const settings = kafkaLogSettings({ brokers: ' a:1, b:2 ,', sessionTimeout: undefined } as never, 'test');
    expect(settings).toEqual({
      ...KAFKA_LOG_DEFAULTS,
      brokers: ['a:1', 'b:2'],
      replicationFactor: undefined,
      topicConfig: undefined,
    });
  });

  it('keeps what is given', () => {
    const topicConfig = (): undefined => undefined;
    const settings = kafkaLogSettings(
      {
        brokers: ['x:9'],
        topicPrefix: 'p.',
        replicationFactor: 1,
        topicConfig,
        awaitCommitVisibility: false,
        maxBytes: 7,
      },
      'test',
    );
    expect(settings).toMatchObject({
      brokers: ['x:9'],
      topicPrefix: 'p.',
      replicationFactor: 1,
      topicConfig,
      awaitCommitVisibility: false,
      maxBytes: 7,
      clientId: 'twinlog',
    });
  });

  it('refuses an empty broker list, naming the caller', () => {
    const error = (() => {
      try {
        return kafkaLogSettings({ brokers: ' , ' }, 'createSomeLog');
      } catch (e) {
        return e;
      }
    })();
    expect(isTwinlogError(error, 'LOG_ARGUMENT_INVALID')).toBe(true);
    expect((error as Error).message).toContain('createSomeLog');
  });
});
