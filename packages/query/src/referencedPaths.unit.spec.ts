/** referencedPaths: what an index can serve (WHERE) and everything a query reads. */
import { describe, expect, it } from 'vitest';
import { parseQuery } from './parseQuery.ts';
import { referencedPaths } from './referencedPaths.ts';

describe('referencedPaths', () => {
  it('collects every clause, resolved, deduplicated and sorted', () => {
    const q = parseQuery(
      'SELECT tags.region AS r, AVG(properties.reported.battery), COUNT() FROM devices ' +
        "WHERE (Devices.Tags.region = 'US' OR STARTSWITH(deviceId, 'x')) AND -properties.reported.battery + 1 > 2 AND tags.[[a.b]] NIN [1] AND NOT IS_DEFINED(tags.region) " +
        'GROUP BY tags.region',
    );
    expect(referencedPaths(q)).toEqual([
      ['deviceId'],
      ['properties', 'reported', 'battery'],
      ['tags', 'a.b'],
      ['tags', 'region'],
    ]);
    expect(referencedPaths(q, 'where')).toEqual([
      ['deviceId'],
      ['properties', 'reported', 'battery'],
      ['tags', 'a.b'],
      ['tags', 'region'],
    ]);
  });

  it('is empty for SELECT * without WHERE (the whole document is read: check select)', () => {
    expect(referencedPaths(parseQuery('SELECT * FROM devices'))).toEqual([]);
    expect(referencedPaths(parseQuery('SELECT deviceId FROM devices WHERE true'), 'where')).toEqual([]);
  });
});
