/**
 * The query lexer: one linear pass, every failure a `QUERY_SYNTAX` error at the offending offset.
 * The token grammar is in the comment at the top of `parseQuery.ts`.
 */
import { queryError, quote } from './queryError.ts';

export type Token =
  | { readonly type: 'ident'; readonly value: string; readonly start: number; readonly end: number }
  | { readonly type: 'escaped'; readonly value: string; readonly start: number; readonly end: number }
  | { readonly type: 'string'; readonly value: string; readonly start: number; readonly end: number }
  | { readonly type: 'number'; readonly value: number; readonly start: number; readonly end: number }
  | { readonly type: 'op'; readonly value: string; readonly start: number; readonly end: number }
  | { readonly type: 'eof'; readonly value: ''; readonly start: number; readonly end: number };

const IDENT_START = /[A-Za-z_$]/;
const IDENT_PART = /[A-Za-z0-9_$]/;
const DIGIT = /[0-9]/;
const HEX = /^[0-9A-Fa-f]$/;
const WHITESPACE = /\s/;
const TWO_CHAR_OPS = new Set(['!=', '<>', '<=', '>=']);
const ONE_CHAR_OPS = new Set(['=', '<', '>', '+', '-', '*', '/', '%', '(', ')', '[', ']', ',', '.']);

/** Split `text` into tokens, ending with one `eof` token. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (WHITESPACE.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '[' && text[i + 1] === '[') {
      // [[name]]: taken literally up to the first `]]` (docs/iot-hub.md "Escaped names and query examples")
      const close = text.indexOf(']]', i + 2);
      if (close < 0) throw queryError('QUERY_SYNTAX', 'unterminated [[ ]] name', text, start);
      const value = text.slice(i + 2, close);
      if (value.length === 0) throw queryError('QUERY_SYNTAX', 'empty [[ ]] name', text, start);
      i = close + 2;
      tokens.push({ type: 'escaped', value, start, end: i });
      continue;
    }
    if (IDENT_START.test(c)) {
      i++;
      while (i < n && IDENT_PART.test(text[i]!)) i++;
      tokens.push({ type: 'ident', value: text.slice(start, i), start, end: i });
      continue;
    }
    if (DIGIT.test(c)) {
      i = lexNumber(text, start, tokens);
      continue;
    }
    if (c === "'" || c === '"') {
      i = lexString(text, start, tokens);
      continue;
    }
    const two = text.slice(i, i + 2);
    if (TWO_CHAR_OPS.has(two)) {
      i += 2;
      tokens.push({ type: 'op', value: two, start, end: i });
      continue;
    }
    if (ONE_CHAR_OPS.has(c)) {
      i++;
      tokens.push({ type: 'op', value: c, start, end: i });
      continue;
    }
    throw queryError(
      'QUERY_SYNTAX',
      `unexpected character ${quote(String.fromCodePoint(text.codePointAt(i)!))}`,
      text,
      start,
    );
  }
  tokens.push({ type: 'eof', value: '', start: n, end: n });
  return tokens;
}

/** decimal `digits ['.' digits] [e [+-] digits]` or `0x` hex digits; must not run into a name. */
function lexNumber(text: string, start: number, tokens: Token[]): number {
  const n = text.length;
  let i = start;
  let value: number;
  if (text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X')) {
    i += 2;
    const digitsStart = i;
    while (i < n && HEX.test(text[i]!)) i++;
    if (i === digitsStart) throw queryError('QUERY_SYNTAX', 'hexadecimal number without digits', text, start);
    value = parseInt(text.slice(digitsStart, i), 16);
    if (!Number.isSafeInteger(value)) throw queryError('QUERY_SYNTAX', 'number out of range', text, start);
  } else {
    while (i < n && DIGIT.test(text[i]!)) i++;
    if (text[i] === '.' && DIGIT.test(text[i + 1] ?? '')) {
      i++;
      while (i < n && DIGIT.test(text[i]!)) i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      let j = i + 1;
      if (text[j] === '+' || text[j] === '-') j++;
      if (!DIGIT.test(text[j] ?? '')) throw queryError('QUERY_SYNTAX', 'exponent without digits', text, start);
      while (j < n && DIGIT.test(text[j]!)) j++;
      i = j;
    }
    value = Number(text.slice(start, i));
    if (!Number.isFinite(value)) throw queryError('QUERY_SYNTAX', 'number out of range', text, start);
  }
  if (i < n && IDENT_PART.test(text[i]!)) {
    throw queryError('QUERY_SYNTAX', `malformed number ${quote(text.slice(start, i + 1))}`, text, start);
  }
  tokens.push({ type: 'number', value, start, end: i });
  return i;
}

/** `'…'` or `"…"` with the escapes \' \" \\ \uXXXX and no others (docs/iot-hub.md "Query language"). */
function lexString(text: string, start: number, tokens: Token[]): number {
  const n = text.length;
  const q = text[start]!;
  let i = start + 1;
  let out = '';
  for (;;) {
    if (i >= n) throw queryError('QUERY_SYNTAX', 'unterminated string', text, start);
    const c = text[i]!;
    if (c === q) {
      i++;
      break;
    }
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = text[i + 1];
    if (e === "'" || e === '"' || e === '\\') {
      out += e;
      i += 2;
    } else if (e === 'u') {
      const hex = text.slice(i + 2, i + 6);
      if (hex.length !== 4 || ![...hex].every((h) => HEX.test(h))) {
        throw queryError('QUERY_SYNTAX', 'malformed \\u escape (four hex digits expected)', text, i);
      }
      out += String.fromCharCode(parseInt(hex, 16));
      i += 6;
    } else {
      const shown = e === undefined ? 'at end of query' : quote('\\' + e);
      throw queryError('QUERY_SYNTAX', `unknown escape ${shown} (use \\' \\" \\\\ or \\uXXXX)`, text, i);
    }
  }
  tokens.push({ type: 'string', value: out, start, end: i });
  return i;
}
