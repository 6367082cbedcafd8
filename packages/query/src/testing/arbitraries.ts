/**
 * fast-check generators for query texts and twins, for this package's fuzz and law tests and for
 * the read model's differential tests later (run a generated query through SQL and through
 * `evaluate`, compare). Tuned so that the hard cases really occur: a tiny vocabulary of names so
 * generated paths hit generated twins, values of every JSON type at the same paths (mixed types),
 * missing paths (undefined), escaped names, keywords in random case, and random noise.
 */
import fc from 'fast-check';

// ── twins ──────────────────────────────────────────────────────────────────────────────────────

/** Names used both in generated twins and in generated queries. */
export const QUERY_NAMES = ['a', 'b', 'x', 'region', 'battery', 'group', 'floor-no', 'a.b', '$version'] as const;

const scalarArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0, 1, 80, 100, -0),
  fc.constantFrom('', 'a', 'A', 'US', 'EU', '1', "it's", 'a;b'),
  fc.boolean(),
  fc.constant(null),
);

const { valueArb } = fc.letrec<{ valueArb: unknown }>((tie) => ({
  valueArb: fc.oneof(
    { depthSize: 'small', maxDepth: 3, depthIdentifier: 'value' },
    scalarArb,
    fc.array(tie('valueArb'), { maxLength: 3, depthIdentifier: 'value' }),
    fc.dictionary(fc.constantFrom(...QUERY_NAMES), tie('valueArb'), { maxKeys: 3, depthIdentifier: 'value' }),
  ),
}));

const sectionArb = fc.dictionary(fc.constantFrom(...QUERY_NAMES), valueArb, { maxKeys: 4 });

/**
 * A twin-shaped document: the root fields of docs/iot-hub.md, "The twin document", `tags` and both property
 * sections over {@link QUERY_NAMES}, with any JSON value (null included) anywhere.
 */
export const twinArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    deviceId: fc.constantFrom('d1', 'd2', 'D1', 'sensor-05', "it's"),
    moduleId: fc.constantFrom('m1', 'm2'),
    status: fc.constantFrom('enabled', 'disabled'),
    version: fc.integer({ min: 1, max: 9 }),
    tags: sectionArb,
    properties: fc.record({ desired: sectionArb, reported: sectionArb }, { requiredKeys: [] }),
    capabilities: fc.record({ iotEdge: fc.boolean() }),
    x509Thumbprint: fc.record({ primaryThumbprint: fc.constantFrom(null, 'ABC') }),
  },
  { requiredKeys: ['deviceId'] },
);

/** A small fleet. */
export const fleetArb: fc.Arbitrary<Record<string, unknown>[]> = fc.array(twinArb, { maxLength: 6 });

// ── query text (grammar-based) ─────────────────────────────────────────────────────────────────

/** A word in random letter case (keywords and function names are case-insensitive). */
const anyCase = (word: string): fc.Arbitrary<string> =>
  fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((flags) => [...word].map((c, i) => (flags[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

const ws = fc.constantFrom(' ', ' ', ' ', '  ', '\n', '\t', '\r\n ');

const nameText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('a', 'b', 'x', 'region', 'battery', '$version'),
  fc.constantFrom('[[group]]', '[[floor-no]]', '[[a.b]]', '[[$version]]', '[[x]]', '[[select]]'),
  fc.constantFrom('group', 'Region'), // a keyword (an error) and a case variant
);

const rootText = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('tags', 'properties.reported', 'properties.desired') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Tags', 'Properties.Reported', 'devices.tags', 'devices.properties.desired'),
  },
);

/** A path: a root section and up to two names below it, or a root field. */
export const pathTextArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .tuple(rootText, fc.array(nameText, { minLength: 1, maxLength: 2 }))
      .map(([r, ns]) => [r, ...ns].join('.')),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'deviceId',
      'DeviceId',
      'status',
      'version',
      'moduleId',
      'capabilities.iotEdge',
      'x509Thumbprint.primaryThumbprint',
      '[[deviceId]]',
    ),
  },
);

const stringLiteral = fc.oneof(
  fc.constantFrom("'US'", "'EU'", "'a'", "''", '"US"', "'it\\'s'", '"d\\"q"', "'\\u0041'", "'a;b'", "'1'", "'\\\\'"),
  fc.string({ maxLength: 6 }).map((s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`),
);
const numberLiteral = fc.oneof(
  fc.integer({ min: 0, max: 100 }).map(String),
  fc.constantFrom('0', '1', '80', '1.5', '1e2', '2E-1', '0x1F', '0X0', '9007199254740991'),
);
const constantText = fc.oneof(
  { weight: 3, arbitrary: stringLiteral },
  { weight: 3, arbitrary: numberLiteral },
  { weight: 2, arbitrary: fc.constantFrom('true', 'false', 'null', 'undefined').chain(anyCase) },
);
const arrayText = fc
  .array(
    fc.oneof(
      constantText,
      numberLiteral.map((n) => `-${n}`),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((items) => `[${items.join(', ')}]`);

const FUNCTIONS_1 = [
  'IS_DEFINED',
  'IS_NULL',
  'IS_BOOL',
  'IS_NUMBER',
  'IS_STRING',
  'IS_OBJECT',
  'IS_ARRAY',
  'IS_PRIMITIVE',
];
const FUNCTIONS_2 = ['STARTSWITH', 'ENDSWITH', 'CONTAINS'];
const COMPARE = ['=', '!=', '<>', '<', '<=', '>', '>='];

const { exprText } = fc.letrec<{ exprText: string; operand: string }>((tie) => ({
  operand: fc.oneof(
    { depthSize: 'small', maxDepth: 4, depthIdentifier: 'expr' },
    { weight: 4, arbitrary: pathTextArb },
    { weight: 3, arbitrary: constantText },
    {
      weight: 1,
      arbitrary: fc
        .tuple(tie('operand'), fc.constantFrom('+', '-', '*', '/', '%'), tie('operand'))
        .map(([a, op, b]) => `${a} ${op} ${b}`),
    },
    { weight: 1, arbitrary: tie('operand').map((a) => `-${a}`) },
    { weight: 1, arbitrary: tie('operand').map((a) => `(${a})`) },
  ),
  exprText: fc.oneof(
    { depthSize: 'small', maxDepth: 4, depthIdentifier: 'expr' },
    {
      weight: 5,
      arbitrary: fc
        .tuple(tie('operand'), fc.constantFrom(...COMPARE), tie('operand'))
        .map(([a, op, b]) => `${a} ${op} ${b}`),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(tie('operand'), fc.constantFrom('IN', 'NIN', 'NOT IN', 'in', 'nin'), arrayText)
        .map(([a, op, arr]) => `${a} ${op} ${arr}`),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom(...FUNCTIONS_1).chain(anyCase), tie('operand')).map(([f, a]) => `${f}(${a})`),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...FUNCTIONS_2).chain(anyCase), tie('operand'), tie('operand'))
        .map(([f, a, b]) => `${f}(${a}, ${b})`),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(tie('exprText'), fc.constantFrom('AND', 'OR', 'and', 'Or'), tie('exprText'))
        .map(([a, op, b]) => `${a} ${op} ${b}`),
    },
    { weight: 1, arbitrary: tie('exprText').map((a) => `NOT ${a}`) },
    { weight: 1, arbitrary: tie('exprText').map((a) => `(${a})`) },
    { weight: 1, arbitrary: tie('operand') },
  ),
}));

/** A WHERE condition (mostly well-formed). */
export const conditionTextArb: fc.Arbitrary<string> = exprText;

const aggregateText = fc.oneof(
  fc.constant('COUNT()'),
  fc.tuple(fc.constantFrom('AVG', 'SUM', 'MIN', 'MAX').chain(anyCase), pathTextArb).map(([f, p]) => `${f}(${p})`),
);
const aliasText = fc.constantFrom('', ' AS n', ' AS [[my name]]', ' AS total', ' as b');

const selectionText = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ text: '*', group: undefined as string | undefined }) },
  {
    weight: 3,
    arbitrary: fc.array(fc.tuple(pathTextArb, aliasText), { minLength: 1, maxLength: 3 }).map((els) => ({
      text: els.map(([p, a]) => p + a).join(', '),
      group: undefined as string | undefined,
    })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.option(pathTextArb, { nil: undefined }),
        fc.array(fc.tuple(aggregateText, aliasText), { minLength: 1, maxLength: 3 }),
      )
      .map(([group, aggs]) => ({
        text: [...(group === undefined ? [] : [group]), ...aggs.map(([f, a]) => f + a)].join(', '),
        group,
      })),
  },
);

/**
 * Query texts from the grammar of `parseQuery.ts`: SELECT [TOP n] selection FROM collection
 * [WHERE condition] [GROUP BY path], with random keyword case and whitespace. Most parse; some hit
 * semantic errors on purpose (keywords as names, duplicate names, GROUP BY mismatches).
 */
export const queryTextArb: fc.Arbitrary<string> = fc
  .record({
    select: anyCase('SELECT'),
    top: fc.option(fc.constantFrom('TOP 0', 'TOP 1', 'top 3', 'TOP 0x2'), { nil: undefined }),
    selection: selectionText,
    from: anyCase('FROM'),
    collection: fc.oneof(
      { weight: 6, arbitrary: fc.constant('devices') },
      { weight: 1, arbitrary: fc.constantFrom('Devices', 'devices.modules', 'devices.jobs') },
    ),
    where: fc.option(conditionTextArb, { nil: undefined, freq: 4 }),
    sp: fc.array(ws, { minLength: 8, maxLength: 8 }),
  })
  .map(({ select, top, selection, from, collection, where, sp }) => {
    let q =
      select + sp[0] + (top === undefined ? '' : top + sp[1]) + selection.text + sp[2] + from + sp[3] + collection;
    if (where !== undefined) q += sp[4] + 'WHERE' + sp[5] + where;
    if (selection.group !== undefined) q += sp[6] + 'GROUP BY' + sp[7] + selection.group;
    return q;
  });

// ── noise ──────────────────────────────────────────────────────────────────────────────────────

const TOKENS = [
  'SELECT',
  'TOP',
  'FROM',
  'WHERE',
  'GROUP',
  'BY',
  'ORDER',
  'AS',
  'AND',
  'OR',
  'NOT',
  'IN',
  'NIN',
  'JOIN',
  'devices',
  'devices.modules',
  'devices.jobs',
  '*',
  ',',
  '.',
  '(',
  ')',
  '[',
  ']',
  '[[',
  ']]',
  '=',
  '!=',
  '<>',
  '<',
  '<=',
  '>',
  '>=',
  '+',
  '-',
  '/',
  '%',
  "'",
  '"',
  '\\',
  "'x'",
  '"y"',
  '1',
  '0x',
  '1e',
  '1.5',
  'true',
  'null',
  'undefined',
  'COUNT()',
  'SUM(',
  'IS_DEFINED(',
  'STARTSWITH(',
  'LOWER(',
  'STARTS_WITH(',
  'tags',
  'tags.x',
  'properties.reported.battery',
  '[[a-b]]',
  ';',
  '\n',
  '\u0000',
  '\u{1F600}',
  '\uD800',
];

/** Random sequences of query tokens: reaches deep parser states that random characters rarely do. */
export const tokenSoupArb: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.constantFrom(...TOKENS), fc.constantFrom('', ' ', ' ', '\n')), { maxLength: 24 })
  .map((parts) => parts.map(([t, s]) => t + s).join(''));

/** A generated query with one character deleted, duplicated or replaced. */
export const mutatedQueryArb: fc.Arbitrary<string> = fc
  .tuple(
    queryTextArb,
    fc.nat(),
    fc.constantFrom('delete', 'duplicate', 'replace'),
    fc.constantFrom(...'()[]\'".,=<>*-;\\ x0'),
  )
  .map(([q, at, how, ch]) => {
    const i = q.length === 0 ? 0 : at % q.length;
    if (how === 'delete') return q.slice(0, i) + q.slice(i + 1);
    if (how === 'duplicate') return q.slice(0, i) + (q[i] ?? '') + q.slice(i);
    return q.slice(0, i) + ch + q.slice(i + 1);
  });
