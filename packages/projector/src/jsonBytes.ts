/**
 * `JSON.stringify` of a value written as UTF-8 straight into a byte buffer (docs/write-path.md,
 * "The audit on worker threads"): an audit line made this way allocates no string, where a
 * stringified line is a fresh string of every line's length, and on a replay's worker threads
 * that garbage costs more than the text itself (each young collection copies the window the fold
 * still holds).
 *
 * The bytes are exactly those of `JSON.stringify(value)` encoded as UTF-8. Plain data takes the
 * fast path: plain objects (own enumerable keys, in `JSON.stringify`'s order), arrays, ASCII
 * strings that need no escape, safe integers, booleans and `null`. Anything else — a string with
 * an escape or a non-ASCII character, a fraction, a `Date` or anything with `toJSON`, a class
 * instance, a boxed primitive, a value nested deeper than 64 levels — is written as
 * `JSON.stringify` of that part, so it is right by construction (and throws what it throws: a
 * cycle, a bigint).
 */

/** A growable byte buffer: `room(n)` makes room for `n` more bytes at `pos` (it may replace `buf`). */
export interface ByteSink {
  buf: Uint8Array;
  pos: number;
  room(n: number): void;
}

/**
 * A byte sink over a buffer that doubles as needed, starting at `initialBytes`.
 *
 * @example
 * const out = byteSink(1024); writeJson(out, { a: 1 }); out.buf.subarray(0, out.pos) // {"a":1}
 */
export function byteSink(initialBytes: number): ByteSink {
  return {
    buf: new Uint8Array(initialBytes),
    pos: 0,
    room(n) {
      if (this.pos + n <= this.buf.length) return;
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
      bigger.set(this.buf.subarray(0, this.pos));
      this.buf = bigger;
    },
  };
}

const utf8 = new TextEncoder();
const MAX_FAST_DEPTH = 64;

/** Write `text` as UTF-8 (as it is: no quotes, no escapes). */
export function writeText(out: ByteSink, text: string): void {
  out.room(text.length * 3);
  out.pos += utf8.encodeInto(text, out.buf.subarray(out.pos)).written;
}

/**
 * Write the UTF-8 bytes of `JSON.stringify(value)`. `value` must be something `JSON.stringify`
 * makes text of (not `undefined`, a function or a symbol at the top).
 *
 * @example
 * const out = byteSink(512); writeJson(out, entry); chunk.set(out.buf.subarray(0, out.pos))
 */
export function writeJson(out: ByteSink, value: unknown): void {
  // for-in below yields a plain object's own keys only while Object.prototype has no enumerable
  // key (someone may have added one: JSON.stringify skips it, and so must this)
  if (objectPrototypeHasKeys()) writeText(out, JSON.stringify(value));
  else json(out, value, 0);
}

function objectPrototypeHasKeys(): boolean {
  for (const _ in Object.prototype) return true;
  return false;
}

function json(out: ByteSink, v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      return string(out, v);
    case 'number':
      return number(out, v);
    case 'boolean':
      return v ? ascii(out, 'true') : ascii(out, 'false');
    case 'object':
      if (v === null) return ascii(out, 'null');
      if (depth >= MAX_FAST_DEPTH) return writeText(out, JSON.stringify(v));
      if (Array.isArray(v)) return array(out, v, depth);
      return object(out, v, depth);
    default:
      return writeText(out, JSON.stringify(v));
  }
}

function byte(out: ByteSink, b: number): void {
  out.room(1);
  out.buf[out.pos++] = b;
}

/** Characters known to be ASCII and to need no escape. */
function ascii(out: ByteSink, text: string): void {
  out.room(text.length);
  const buf = out.buf;
  let p = out.pos;
  for (let i = 0; i < text.length; i++) buf[p++] = text.charCodeAt(i);
  out.pos = p;
}

function string(out: ByteSink, s: string): void {
  const n = s.length;
  out.room(n + 2);
  const buf = out.buf;
  const start = out.pos;
  let p = start;
  buf[p++] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    // a control character, `"`, `\` or anything past ASCII: JSON.stringify says how
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
      out.pos = start;
      return writeText(out, JSON.stringify(s));
    }
    buf[p++] = c;
  }
  buf[p++] = 0x22;
  out.pos = p;
}

function number(out: ByteSink, n: number): void {
  if (!Number.isSafeInteger(n)) return ascii(out, JSON.stringify(n)); // fractions, ±Infinity, NaN
  out.room(17);
  const buf = out.buf;
  if (n < 0) {
    buf[out.pos++] = 0x2d;
    n = -n;
  }
  if (n < 10) {
    buf[out.pos++] = 0x30 + n; // -0 too: JSON.stringify(-0) is "0"
    return;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let p = out.pos + digits;
  out.pos = p;
  while (n > 0) {
    const q = Math.floor(n / 10);
    buf[--p] = 0x30 + (n - q * 10);
    n = q;
  }
}

function array(out: ByteSink, a: readonly unknown[], depth: number): void {
  if (Object.getPrototypeOf(a) !== Array.prototype) return writeText(out, JSON.stringify(a));
  byte(out, 0x5b);
  for (let i = 0; i < a.length; i++) {
    if (i > 0) byte(out, 0x2c);
    const x = a[i];
    // what JSON.stringify writes as null inside an array
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') ascii(out, 'null');
    else json(out, x, depth + 1);
  }
  byte(out, 0x5d);
}

function object(out: ByteSink, o: object, depth: number): void {
  const proto: unknown = Object.getPrototypeOf(o);
  // Date, class instances, boxed primitives, anything with toJSON: as JSON.stringify writes them
  if ((proto !== Object.prototype && proto !== null) || typeof (o as { toJSON?: unknown }).toJSON === 'function') {
    return writeText(out, JSON.stringify(o));
  }
  byte(out, 0x7b);
  let first = true;
  // for-in, not Object.keys: no array per object; its order is JSON.stringify's (integer keys
  // ascending, then insertion order), and its keys are the object's own (see writeJson)
  for (const k in o) {
    const x = (o as Record<string, unknown>)[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    if (!first) byte(out, 0x2c);
    first = false;
    string(out, k);
    byte(out, 0x3a);
    json(out, x, depth + 1);
  }
  byte(out, 0x7d);
}
