/**
 * Standard base64 (RFC 4648 §4, with padding) of ASCII text, without Node's Buffer or the DOM's
 * btoa/atob (this package is pure and type-checks with `types: []`).
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Encode text whose characters are all < U+0080. */
export function asciiToBase64(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i += 3) {
    const a = text.charCodeAt(i);
    const b = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
    const c = i + 2 < text.length ? text.charCodeAt(i + 2) : 0;
    const n = (a << 16) | (b << 8) | c;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
    out += i + 1 < text.length ? ALPHABET[(n >> 6) & 63]! : '=';
    out += i + 2 < text.length ? ALPHABET[n & 63]! : '=';
  }
  return out;
}

/** Decode canonical padded base64 to text of bytes < 0x80, or `undefined` for anything else. */
export function base64ToAscii(b64: string): string | undefined {
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return undefined;
  let out = '';
  for (let i = 0; i < b64.length; i += 4) {
    const chunk = b64.slice(i, i + 4);
    const pad = chunk.endsWith('==') ? 2 : chunk.endsWith('=') ? 1 : 0;
    if (pad > 0 && i + 4 !== b64.length) return undefined;
    let n = 0;
    for (let j = 0; j < 4; j++) n = (n << 6) | (j < 4 - pad ? ALPHABET.indexOf(chunk[j]!) : 0);
    const bytes = [(n >> 16) & 255, (n >> 8) & 255, n & 255].slice(0, 3 - pad);
    if (bytes.some((x) => x >= 128)) return undefined;
    out += String.fromCharCode(...bytes);
  }
  // canonical form only: one text, one token
  return asciiToBase64(out) === b64 ? out : undefined;
}
