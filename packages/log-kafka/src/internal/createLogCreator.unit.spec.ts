import { logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createLogCreator, type KafkaLogEntry } from './createLogCreator.ts';

function capture(level: Parameters<typeof createLogCreator>[0]): {
  log: (namespace: string, at: logLevel, message: string) => void;
  seen: KafkaLogEntry[];
} {
  const seen: KafkaLogEntry[] = [];
  const write = createLogCreator(level, (e) => seen.push(e))(logLevel.DEBUG);
  return {
    seen,
    log: (namespace, at, message) =>
      write({ namespace, level: at, label: '', log: { timestamp: 'now', message, groupId: 'g' } }),
  };
}

describe('createLogCreator', () => {
  it('passes entries at or above the level, with kafkajs fields but not its timestamp', () => {
    const { log, seen } = capture('warn');
    log('Consumer', logLevel.ERROR, 'crash');
    log('Runner', logLevel.WARN, 'rebalancing');
    log('Consumer', logLevel.INFO, 'joined');
    expect(seen).toEqual([
      { level: 'error', namespace: 'Consumer', message: 'crash', fields: { groupId: 'g' } },
      { level: 'warn', namespace: 'Runner', message: 'rebalancing', fields: { groupId: 'g' } },
    ]);
  });

  it('drops the per-response error lines of the connection layer unless debugging', () => {
    const quiet = capture('error');
    quiet.log('Connection', logLevel.ERROR, 'Response Metadata(key: 3, version: 6)');
    quiet.log('Connection', logLevel.ERROR, 'Connection error: connect ECONNREFUSED');
    expect(quiet.seen.map((e) => e.message)).toEqual(['Connection error: connect ECONNREFUSED']);
    const loud = capture('debug');
    loud.log('Connection', logLevel.ERROR, 'Response Metadata(key: 3, version: 6)');
    expect(loud.seen).toHaveLength(1);
  });

  it('logs nothing at level nothing', () => {
    const { log, seen } = capture('nothing');
    log('Consumer', logLevel.ERROR, 'crash');
    expect(seen).toEqual([]);
  });
});
