import { describe, expect, it } from 'vitest';
import { createJsonLogger } from './createJsonLogger.ts';

describe('createJsonLogger', () => {
  const logTo = (lines: string[]) => createJsonLogger({ level: 'info', write: (l) => lines.push(l), now: () => 0 });

  it('writes one JSON line per entry at or above its level', () => {
    const lines: string[] = [];
    const log = logTo(lines);
    log.debug('dropped');
    log.info('started', { port: 8080 });
    expect(lines).toEqual(['{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"started","port":8080}\n']);
  });

  it('keeps the fields JSON can write when one cannot be (a BigInt, a cycle)', () => {
    const lines: string[] = [];
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    logTo(lines).warn('odd fields', { offset: 12n, cycle, partition: 3 });
    expect(JSON.parse(lines[0]!)).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      level: 'warn',
      msg: 'odd fields',
      offset: '12',
      cycle: '[object Object]',
      partition: 3,
    });
  });
});
