/**
 * The IoT Hub twin query parser (docs/iot-hub.md, "Queries"; semantics in packages/query/README.md): text in, a {@link Query} out, or a
 * `TwinlogError` whose `details.position` points at the offending character.
 *
 * Grammar (keywords, function names and the collection are case-insensitive; `[[…]]` is docs/iot-hub.md "Escaped names and query examples"):
 *
 * ```
 * query       ::= SELECT [TOP integer] selection FROM collection [WHERE expr] [GROUP BY path] EOF
 * selection   ::= '*' | element (',' element)*
 * element     ::= (path | aggregate) [AS name]
 * aggregate   ::= COUNT '(' ')' | (AVG | SUM | MIN | MAX) '(' path ')'
 * collection  ::= devices | devices '.' modules | devices '.' jobs
 *
 * expr        ::= and (OR and)*
 * and         ::= not (AND not)*
 * not         ::= NOT not | comparison
 * comparison  ::= additive [ cmpop additive | (IN | NIN | NOT IN) array ]
 * cmpop       ::= '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
 * additive    ::= multiplicative (('+' | '-') multiplicative)*
 * multiplicative ::= unary (('*' | '/' | '%') unary)*
 * unary       ::= '-' unary | primary
 * primary     ::= constant | array | call | path | '(' expr ')'
 * call        ::= function '(' [expr (',' expr)*] ')'
 * function    ::= IS_DEFINED | IS_NULL | IS_BOOL | IS_NUMBER | IS_STRING | IS_OBJECT | IS_ARRAY
 *               | IS_PRIMITIVE                        -- one argument
 *               | STARTSWITH | ENDSWITH | CONTAINS    -- two arguments
 * array       ::= '[' arrayItem (',' arrayItem)* ']'
 * arrayItem   ::= constant | '-' number | array
 * constant    ::= NULL | UNDEFINED | TRUE | FALSE | number | string
 * path        ::= name ('.' name)*
 * name        ::= identifier | '[[' any text not containing ']]' ']]'
 *
 * identifier  ::= [A-Za-z_$][A-Za-z0-9_$]*, not a keyword (KEYWORDS in internal/names.ts)
 * number      ::= digits ['.' digits] [('e'|'E') ['+'|'-'] digits] | '0x' hexdigits
 * string      ::= "'" … "'" | '"' … '"'   -- escapes \' \" \\ \uXXXX only
 * whitespace  ::= any JavaScript whitespace, between any two tokens
 * ```
 *
 * Notes: `[[` always opens an escaped name, so a nested array literal is written `[ [1], 2]`. A
 * comparison does not chain (`a = b = c` is an error). `-` before a number literal folds into the
 * constant. ORDER BY and JOIN are refused with `QUERY_UNSUPPORTED` (docs/iot-hub.md "Query language", "Query conditions"), as are the
 * routing-only functions (docs/iot-hub.md "Query functions and grouping") and the restrictions of docs/iot-hub.md "Query conditions" (GROUP BY on `devices.modules`;
 * `devices.jobs` with a projection, aggregate, GROUP BY or a condition on non-job fields).
 */
import { TwinlogError, isTwinlogError, type Result } from '@twinlog/core';
import { JOB_FIELDS, KEYWORDS, resolvePath, type RawSegment } from './internal/names.ts';
import { queryError, quote } from './internal/queryError.ts';
import { tokenize, type Token } from './internal/tokenize.ts';
import type {
  AggregateName,
  Collection,
  CompareOp,
  Expr,
  FunctionName,
  Path,
  Query,
  QueryConstant,
  SelectElement,
} from './query.ts';

/** The longest query text accepted, in UTF-16 code units (docs/iot-hub.md "Limits": 8192 characters). */
export const MAX_QUERY_LENGTH = 8192;
/** How deeply parentheses, NOT, `-`, calls and array literals may nest. */
export const MAX_NESTING = 64;
/** How deep an expression tree may be (long `+` chains count; AND/OR lists are flat). */
export const MAX_EXPRESSION_DEPTH = 128;

const ARITY: Readonly<Record<FunctionName, number>> = {
  IS_DEFINED: 1,
  IS_NULL: 1,
  IS_BOOL: 1,
  IS_NUMBER: 1,
  IS_STRING: 1,
  IS_OBJECT: 1,
  IS_ARRAY: 1,
  IS_PRIMITIVE: 1,
  STARTSWITH: 2,
  ENDSWITH: 2,
  CONTAINS: 2,
};
/** Routing-query functions (docs/iot-hub.md "Query functions and grouping") that twin queries do not accept (twinlog choice; the hub is [open]). */
const ROUTING_ONLY = new Set([
  'ABS',
  'EXP',
  'POWER',
  'SQUARE',
  'CEILING',
  'FLOOR',
  'SIGN',
  'SQRT',
  'AS_NUMBER',
  'CONCAT',
  'LENGTH',
  'LOWER',
  'UPPER',
  'SUBSTRING',
  'INDEX_OF',
]);
const AGGREGATES = new Set<string>(['COUNT', 'AVG', 'SUM', 'MIN', 'MAX']);
const COMPARE_OPS: Readonly<Record<string, CompareOp>> = {
  '=': '=',
  '!=': '!=',
  '<>': '!=',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
};

/**
 * Parse an IoT Hub twin query. Use it where a bad query is the caller's bug or should surface as an
 * error response; use {@link safeParseQuery} to branch on the outcome instead.
 *
 * The result is resolved: collection prefixes are stripped and root fields canonically cased (see
 * `Query`). Keywords, function names and the collection name are case-insensitive; property names
 * below the root are case-sensitive.
 *
 * @example
 * const q = parseQuery("SELECT deviceId, properties.reported.battery AS b FROM devices WHERE tags.region = 'US'")
 * q.select.map((e) => e.name) //=> ["deviceId","b"]
 * q.where.left.path           //=> ["tags","region"]
 * parseQuery('select * from Devices where DeviceId = "d1"').where.left.path //=> ["deviceId"]
 *
 * @throws {TwinlogError} `QUERY_TOO_LONG` over {@link MAX_QUERY_LENGTH} characters (IoT Hub:
 *   412 `PreconditionFailed`); `QUERY_SYNTAX` for text that is not a query, an unknown function, a
 *   wrong argument count, an aggregate outside SELECT, a path beside an aggregate without GROUP BY
 *   on it, a duplicate result name, a bad TOP, or nesting past {@link MAX_NESTING} /
 *   {@link MAX_EXPRESSION_DEPTH}; `QUERY_UNSUPPORTED` for ORDER BY, JOIN, routing-only functions and
 *   the collection restrictions of docs/iot-hub.md "Query conditions" (both IoT Hub 400 `ArgumentInvalid`). Every error has
 *   `details.position` `{ offset, line, column }`.
 */
export function parseQuery(text: string): Query {
  if (text.length > MAX_QUERY_LENGTH) {
    throw queryError(
      'QUERY_TOO_LONG',
      `the query is ${text.length} characters long, the limit is ${MAX_QUERY_LENGTH}`,
      text,
      MAX_QUERY_LENGTH,
      { limit: MAX_QUERY_LENGTH, length: text.length },
    );
  }
  return new Parser(text).query();
}

/**
 * {@link parseQuery} as a value: `{ ok: true, value }` or `{ ok: false, error }`, for callers that
 * routinely branch (a gateway validating a request, a configuration's target condition).
 *
 * @example
 * const r = safeParseQuery('SELECT * FROM devices WHERE')
 * r.ok                         //=> false
 * r.error.code                 //=> "QUERY_SYNTAX"
 * r.error.details.position     //=> {"offset":27,"line":1,"column":28}
 * r.error.iotHub.code          //=> 400004
 *
 * @throws nothing for any string input; anything other than a `TwinlogError` would be a bug and is
 *   rethrown.
 */
export function safeParseQuery(text: string): Result<Query> {
  try {
    return { ok: true, value: parseQuery(text) };
  } catch (e) {
    if (isTwinlogError(e)) return { ok: false, error: e };
    throw e;
  }
}

interface RawPath {
  readonly segments: readonly RawSegment[];
  readonly start: number;
}
interface RawElement {
  readonly kind: 'path' | 'aggregate';
  readonly fn: AggregateName | undefined;
  readonly path: RawPath | undefined;
  readonly alias: string | undefined;
  readonly start: number;
}

class Parser {
  private readonly tokens: Token[];
  private pos = 0;
  private nesting = 0;
  private readonly depth = new WeakMap<Expr, number>();
  private collection: Collection = 'devices';

  constructor(private readonly text: string) {
    this.tokens = tokenize(text);
  }

  // ── token helpers ──────────────────────────────────────────────────────────────────────────

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.pos + ahead, this.tokens.length - 1)]!;
  }
  private next(): Token {
    const t = this.peek();
    if (this.pos < this.tokens.length - 1) this.pos++;
    return t;
  }
  private isKeyword(word: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.type === 'ident' && t.value.toUpperCase() === word;
  }
  private isOp(op: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.type === 'op' && t.value === op;
  }
  private acceptKeyword(word: string): boolean {
    if (!this.isKeyword(word)) return false;
    this.next();
    return true;
  }
  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.next();
    return true;
  }
  /** A reserved word that does not start a dotted path: it cannot begin a name here. */
  private isStrayKeyword(): boolean {
    const t = this.peek();
    return t.type === 'ident' && KEYWORDS.has(t.value.toUpperCase()) && !this.isOp('.', 1);
  }
  private expectKeyword(word: string): void {
    if (!this.acceptKeyword(word)) throw this.unexpected(word);
  }
  private expectOp(op: string): void {
    if (!this.acceptOp(op)) throw this.unexpected(`'${op}'`);
  }
  private describe(t: Token): string {
    switch (t.type) {
      case 'eof':
        return 'the end of the query';
      case 'string':
        return `the string ${quote(t.value)}`;
      case 'number':
        return `the number ${this.text.slice(t.start, t.end)}`;
      case 'escaped':
        return `the name ${quote(`[[${t.value}]]`)}`;
      default:
        return quote(t.value);
    }
  }
  private unexpected(expected: string, t: Token = this.peek()): TwinlogError {
    return this.error('QUERY_SYNTAX', `expected ${expected} but found ${this.describe(t)}`, t.start);
  }
  private error(code: 'QUERY_SYNTAX' | 'QUERY_UNSUPPORTED', message: string, offset: number): TwinlogError {
    return queryError(code, message, this.text, offset);
  }
  private enter(at: number): void {
    if (++this.nesting > MAX_NESTING) {
      throw this.error('QUERY_SYNTAX', `the query nests more than ${MAX_NESTING} levels deep`, at);
    }
  }
  private leave(): void {
    this.nesting--;
  }
  private node(e: Expr, children: readonly Expr[], at: number): Expr {
    let d = 0;
    for (const c of children) d = Math.max(d, this.depth.get(c) ?? 1);
    if (d + 1 > MAX_EXPRESSION_DEPTH) {
      throw this.error('QUERY_SYNTAX', `the expression is more than ${MAX_EXPRESSION_DEPTH} levels deep`, at);
    }
    this.depth.set(e, d + 1);
    return e;
  }

  // ── query ──────────────────────────────────────────────────────────────────────────────────

  query(): Query {
    this.expectKeyword('SELECT');
    let top: number | undefined;
    if (this.isKeyword('TOP')) {
      this.next();
      const t = this.next();
      if (t.type !== 'number') throw this.unexpected('a row count after TOP', t);
      if (!Number.isSafeInteger(t.value)) {
        throw this.error('QUERY_SYNTAX', 'TOP takes a whole number of rows', t.start);
      }
      top = t.value;
    }
    const star = this.peek();
    const raw = this.acceptOp('*') ? undefined : this.selection();
    this.expectKeyword('FROM');
    this.collection = this.from();
    if (this.isKeyword('JOIN')) throw this.error('QUERY_UNSUPPORTED', 'JOIN is not supported', this.peek().start);

    const select = raw === undefined ? '*' : this.resolveSelection(raw);
    if (this.collection === 'devices.jobs' && select !== '*') {
      throw this.error('QUERY_UNSUPPORTED', 'devices.jobs queries take SELECT * only', raw![0]!.start);
    }

    let where: Expr | undefined;
    if (this.acceptKeyword('WHERE')) where = this.expr();

    let groupBy: Path | undefined;
    const groupToken = this.peek();
    if (this.acceptKeyword('GROUP')) {
      this.expectKeyword('BY');
      if (this.collection !== 'devices') {
        throw this.error(
          'QUERY_UNSUPPORTED',
          `GROUP BY works on device twins only, not ${this.collection}`,
          groupToken.start,
        );
      }
      const p = this.rawPath();
      groupBy = resolvePath(this.collection, p.segments);
      if (this.isOp(',')) throw this.error('QUERY_SYNTAX', 'GROUP BY takes one path', this.peek().start);
    }
    if (this.isKeyword('ORDER')) {
      throw this.error('QUERY_UNSUPPORTED', 'ORDER BY is not part of the IoT Hub query language', this.peek().start);
    }
    const end = this.peek();
    if (end.type !== 'eof') throw this.unexpected(this.expectedAfter(where, groupBy), end);

    if (select === '*') {
      if (groupBy !== undefined) throw this.error('QUERY_SYNTAX', 'SELECT * cannot be grouped', star.start);
    } else {
      this.checkGrouping(select, raw!, groupBy);
    }
    return { top, select, from: this.collection, where, groupBy };
  }

  private expectedAfter(where: Expr | undefined, groupBy: Path | undefined): string {
    if (groupBy !== undefined) return 'the end of the query';
    if (where !== undefined) return 'an operator, GROUP BY or the end of the query';
    return 'WHERE, GROUP BY or the end of the query';
  }

  private from(): Collection {
    const t = this.next();
    if (t.type !== 'ident' || t.value.toLowerCase() !== 'devices') {
      throw this.unexpected('devices, devices.modules or devices.jobs', t);
    }
    if (!this.isOp('.')) return 'devices';
    this.next();
    const sub = this.next();
    const name = sub.type === 'ident' ? sub.value.toLowerCase() : '';
    if (name === 'modules') return 'devices.modules';
    if (name === 'jobs') return 'devices.jobs';
    throw this.unexpected('modules or jobs after devices.', sub);
  }

  private selection(): RawElement[] {
    const out: RawElement[] = [];
    do {
      const start = this.peek();
      let element: Omit<RawElement, 'alias'>;
      if (start.type === 'ident' && AGGREGATES.has(start.value.toUpperCase()) && this.isOp('(', 1)) {
        const fn = start.value.toUpperCase() as AggregateName;
        this.next();
        this.next();
        if (fn === 'COUNT') {
          if (!this.isOp(')')) throw this.unexpected("')' (COUNT() takes no argument)");
          this.next();
          element = { kind: 'aggregate', fn, path: undefined, start: start.start };
        } else {
          const path = this.rawPath();
          this.expectOp(')');
          element = { kind: 'aggregate', fn, path, start: start.start };
        }
      } else {
        if (this.isStrayKeyword()) throw this.unexpected("'*', a path or an aggregate");
        element = { kind: 'path', fn: undefined, path: this.rawPath(), start: start.start };
      }
      let alias: string | undefined;
      if (this.acceptKeyword('AS')) alias = this.name().name;
      out.push({ ...element, alias });
    } while (this.acceptOp(','));
    return out;
  }

  /** Names: alias, else the path's last segment, else `$n` for the n-th unaliased aggregate. */
  private resolveSelection(raw: readonly RawElement[]): SelectElement[] {
    const out: SelectElement[] = [];
    const seen = new Set<string>();
    let unnamed = 0;
    for (const r of raw) {
      const path = r.path === undefined ? undefined : resolvePath(this.collection, r.path.segments);
      let e: SelectElement;
      if (r.kind === 'path') {
        e = { kind: 'path', path: path!, name: r.alias ?? path![path!.length - 1]! };
      } else {
        const name = r.alias ?? `$${++unnamed}`;
        e =
          r.fn === 'COUNT'
            ? { kind: 'aggregate', fn: 'COUNT', path: undefined, name }
            : { kind: 'aggregate', fn: r.fn as Exclude<AggregateName, 'COUNT'>, path: path!, name };
      }
      if (seen.has(e.name)) {
        throw this.error('QUERY_SYNTAX', `two results are named ${quote(e.name)}, give one an alias with AS`, r.start);
      }
      seen.add(e.name);
      out.push(e);
    }
    return out;
  }

  private checkGrouping(select: readonly SelectElement[], raw: readonly RawElement[], groupBy: Path | undefined): void {
    const hasAggregate = select.some((e) => e.kind === 'aggregate');
    if (groupBy === undefined && !hasAggregate) return;
    select.forEach((e, i) => {
      if (e.kind !== 'path') return;
      if (groupBy === undefined) {
        throw this.error('QUERY_SYNTAX', 'a path beside an aggregate needs GROUP BY on that path', raw[i]!.start);
      }
      if (e.path.length !== groupBy.length || e.path.some((s, j) => s !== groupBy[j])) {
        throw this.error('QUERY_SYNTAX', 'with GROUP BY, every selected path must be the grouped path', raw[i]!.start);
      }
    });
  }

  // ── paths and names ────────────────────────────────────────────────────────────────────────

  private name(): RawSegment & { start: number } {
    const t = this.next();
    if (t.type === 'escaped') return { name: t.value, escaped: true, start: t.start };
    if (t.type === 'ident') {
      if (KEYWORDS.has(t.value.toUpperCase())) {
        throw this.error(
          'QUERY_SYNTAX',
          `${quote(t.value)} is a keyword, write [[${t.value}]] to use it as a name`,
          t.start,
        );
      }
      return { name: t.value, escaped: false, start: t.start };
    }
    throw this.unexpected('a name', t);
  }

  private rawPath(): RawPath {
    const first = this.name();
    const segments: RawSegment[] = [first];
    while (this.acceptOp('.')) segments.push(this.name());
    return { segments, start: first.start };
  }

  // ── expressions ────────────────────────────────────────────────────────────────────────────

  private expr(): Expr {
    const at = this.peek().start;
    this.enter(at);
    const operands = [this.and()];
    while (this.acceptKeyword('OR')) operands.push(this.and());
    this.leave();
    return operands.length === 1 ? operands[0]! : this.flat('or', operands, at);
  }

  private and(): Expr {
    const at = this.peek().start;
    const operands = [this.not()];
    while (this.acceptKeyword('AND')) operands.push(this.not());
    return operands.length === 1 ? operands[0]! : this.flat('and', operands, at);
  }

  private flat(kind: 'and' | 'or', operands: readonly Expr[], at: number): Expr {
    const flat = operands.flatMap((o) => (o.kind === kind ? o.operands : [o]));
    return this.node({ kind, operands: flat }, flat, at);
  }

  private not(): Expr {
    const t = this.peek();
    if (this.isKeyword('NOT')) {
      this.next();
      this.enter(t.start);
      const operand = this.not();
      this.leave();
      return this.node({ kind: 'not', operand }, [operand], t.start);
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const left = this.additive();
    const t = this.peek();
    if (t.type === 'op' && COMPARE_OPS[t.value] !== undefined) {
      this.next();
      const right = this.additive();
      const after = this.peek();
      if (after.type === 'op' && COMPARE_OPS[after.value] !== undefined) {
        throw this.error('QUERY_SYNTAX', 'comparisons do not chain, use AND', after.start);
      }
      return this.node({ kind: 'compare', op: COMPARE_OPS[t.value]!, left, right }, [left, right], t.start);
    }
    let negated: boolean | undefined;
    if (this.isKeyword('IN')) negated = false;
    else if (this.isKeyword('NIN')) negated = true;
    else if (this.isKeyword('NOT') && this.isKeyword('IN', 1)) {
      this.next();
      negated = true;
    }
    if (negated === undefined) return left;
    this.next();
    if (!this.isOp('[')) throw this.unexpected(`an array literal after ${negated ? 'NIN' : 'IN'}`);
    const values = this.array();
    return this.node({ kind: 'in', negated, operand: left, values }, [left], t.start);
  }

  private additive(): Expr {
    let left = this.multiplicative();
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op' || (t.value !== '+' && t.value !== '-')) return left;
      this.next();
      const right = this.multiplicative();
      left = this.node({ kind: 'arithmetic', op: t.value, left, right }, [left, right], t.start);
    }
  }

  private multiplicative(): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op' || (t.value !== '*' && t.value !== '/' && t.value !== '%')) return left;
      this.next();
      const right = this.unary();
      left = this.node({ kind: 'arithmetic', op: t.value, left, right }, [left, right], t.start);
    }
  }

  private unary(): Expr {
    const t = this.peek();
    if (!this.isOp('-')) return this.primary();
    this.next();
    this.enter(t.start);
    const operand = this.unary();
    this.leave();
    if (operand.kind === 'constant' && typeof operand.value === 'number') {
      return this.node({ kind: 'constant', value: -operand.value }, [], t.start);
    }
    return this.node({ kind: 'negate', operand }, [operand], t.start);
  }

  private primary(): Expr {
    const t = this.peek();
    switch (t.type) {
      case 'number':
      case 'string':
        this.next();
        return this.node({ kind: 'constant', value: t.value }, [], t.start);
      case 'escaped':
        return this.path();
      case 'eof':
        throw this.unexpected('an expression');
      case 'op':
        if (t.value === '(') {
          this.next();
          const e = this.expr();
          this.expectOp(')');
          return e;
        }
        if (t.value === '[') return this.node({ kind: 'constant', value: this.array() }, [], t.start);
        throw this.unexpected('an expression');
      case 'ident': {
        const word = t.value.toUpperCase();
        if (word === 'NULL' || word === 'UNDEFINED' || word === 'TRUE' || word === 'FALSE') {
          this.next();
          const value = word === 'NULL' ? null : word === 'UNDEFINED' ? undefined : word === 'TRUE';
          return this.node({ kind: 'constant', value }, [], t.start);
        }
        if (this.isOp('(', 1)) return this.call();
        if (this.isStrayKeyword()) throw this.unexpected('an expression');
        return this.path();
      }
    }
  }

  private path(): Expr {
    const raw = this.rawPath();
    const path = resolvePath(this.collection, raw.segments);
    if (this.collection === 'devices.jobs' && !JOB_FIELDS.includes(path[0]!)) {
      throw this.error(
        'QUERY_UNSUPPORTED',
        `devices.jobs conditions may only name job fields, not ${quote(path[0]!)}`,
        raw.start,
      );
    }
    return this.node({ kind: 'path', path }, [], raw.start);
  }

  private call(): Expr {
    const nameToken = this.next();
    const written = String(nameToken.value);
    const upper = written.toUpperCase();
    const at = nameToken.start;
    if (AGGREGATES.has(upper)) {
      throw this.error('QUERY_SYNTAX', `the aggregate ${upper} is only allowed in the SELECT list`, at);
    }
    if (ROUTING_ONLY.has(upper)) {
      throw this.error(
        'QUERY_UNSUPPORTED',
        `${upper} is a message routing function, twin queries do not support it`,
        at,
      );
    }
    if (!Object.prototype.hasOwnProperty.call(ARITY, upper)) {
      const hint =
        upper === 'STARTS_WITH' || upper === 'ENDS_WITH'
          ? ` (the twin query spelling is ${upper.replace('_', '')})`
          : '';
      throw this.error('QUERY_SYNTAX', `unknown function ${quote(written)}${hint}`, at);
    }
    const fn = upper as FunctionName;
    this.expectOp('(');
    this.enter(at);
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      do args.push(this.expr());
      while (this.acceptOp(','));
    }
    this.leave();
    this.expectOp(')');
    if (args.length !== ARITY[fn]) {
      throw this.error(
        'QUERY_SYNTAX',
        `${fn} takes ${ARITY[fn]} argument${ARITY[fn] === 1 ? '' : 's'}, not ${args.length}`,
        at,
      );
    }
    return this.node({ kind: 'call', fn, args }, args, at);
  }

  /** `[` item (`,` item)* `]` where an item is a constant, a negated number or a nested array. */
  private array(): QueryConstant[] {
    const open = this.peek();
    this.expectOp('[');
    this.enter(open.start);
    const items: QueryConstant[] = [];
    do items.push(this.arrayItem());
    while (this.acceptOp(','));
    this.expectOp(']');
    this.leave();
    return items;
  }

  private arrayItem(): QueryConstant {
    const t = this.peek();
    if (this.isOp('[')) return this.array();
    if (this.isOp('-')) {
      this.next();
      const n = this.next();
      if (n.type !== 'number') throw this.unexpected('a number after -', n);
      return -n.value;
    }
    if (t.type === 'number' || t.type === 'string') {
      this.next();
      return t.value;
    }
    if (t.type === 'ident') {
      const word = t.value.toUpperCase();
      if (word === 'NULL' || word === 'UNDEFINED' || word === 'TRUE' || word === 'FALSE') {
        this.next();
        return word === 'NULL' ? null : word === 'UNDEFINED' ? undefined : word === 'TRUE';
      }
    }
    throw this.unexpected('a constant (array literals hold constants only)', t);
  }
}
