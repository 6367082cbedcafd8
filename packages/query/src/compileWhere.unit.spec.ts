/** compileWhere: Boolean true only (docs/iot-hub.md, "Queries"); the table in evaluate.unit.spec.ts covers operators. */
import { describe, expect, it } from 'vitest';
import { compileWhere } from './compileWhere.ts';
import { parseQuery } from './parseQuery.ts';

const keep = (where: string): ((t: object) => boolean) =>
  compileWhere(parseQuery(`SELECT * FROM devices WHERE ${where}`));

describe('compileWhere', () => {
  it.each([
    ['tags.v', { v: true }, true],
    ['tags.v', { v: false }, false],
    ['tags.v', { v: 'true' }, false],
    ['tags.v', { v: 1 }, false],
    ['tags.v', { v: {} }, false],
    ['tags.v', { v: [true] }, false],
    ['tags.v', {}, false],
    ['NOT tags.v', {}, false],
    ['NOT tags.v', { v: false }, true],
    ['tags.v OR true', {}, true],
    ['tags.v AND false', {}, false],
    ['NOT (tags.v AND false)', {}, true],
  ])('%s over tags %j is %s', (where, tags, expected) => {
    expect(keep(where)({ deviceId: 'd', tags })).toBe(expected);
  });

  it('keeps everything without WHERE, including odd inputs', () => {
    const all = compileWhere(parseQuery('SELECT * FROM devices'));
    expect([{}, [], { tags: null }].every(all)).toBe(true);
  });

  it('does not mutate the twin', () => {
    const twin = Object.freeze({ deviceId: 'd', tags: Object.freeze({ a: Object.freeze([1]) }) });
    expect(keep("IS_ARRAY(tags.a) AND tags.a != 1 OR STARTSWITH(deviceId, 'd')")(twin)).toBe(true);
  });
});
