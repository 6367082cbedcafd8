/**
 * A msgpack encoder for the records twinlog builds itself (output records, snapshots): plain data
 * only — null, booleans, numbers, strings, arrays, plain objects and byte arrays — with the keys of
 * every map in sorted order and `undefined` members left out. It writes the very bytes
 * `@msgpack/msgpack`'s `Encoder({ sortKeys: true, ignoreUndefined: true })` writes (a property test
 * holds it to that), in one pass over a reused buffer, without that encoder's per-value dispatch
 * and per-map double walk. Untrusted input never comes here: `encodeSnapshot` checks it first.
 */
// the platform's TextEncoder (codec's compile target names no platform library)
const textEncoder = new (
  globalThis as unknown as { TextEncoder: new () => { encode(s: string): Uint8Array } }
).TextEncoder();

export class SortedEncoder {
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  /** The encoding of `value`, in a fresh array. */
  encode(value: unknown): Uint8Array {
    this.pos = 0;
    this.value(value, 0);
    return this.buf.slice(0, this.pos);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  private u8(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  private headed(code: number, size: number, bytes: 1 | 2 | 4): void {
    this.room(1 + bytes);
    this.buf[this.pos++] = code;
    if (bytes === 1) this.buf[this.pos++] = size;
    else if (bytes === 2) {
      this.view.setUint16(this.pos, size);
      this.pos += 2;
    } else {
      this.view.setUint32(this.pos, size);
      this.pos += 4;
    }
  }

  private value(v: unknown, depth: number): void {
    if (depth > 100) throw new Error(`Too deep objects in depth ${depth}`);
    if (v === null || v === undefined) return this.u8(0xc0);
    switch (typeof v) {
      case 'boolean':
        return this.u8(v ? 0xc3 : 0xc2);
      case 'number':
        return this.number(v);
      case 'string':
        return this.string(v);
      case 'object':
        if (Array.isArray(v)) return this.array(v, depth);
        if (ArrayBuffer.isView(v)) return this.binary(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        return this.map(v as Record<string, unknown>, depth);
      default:
        throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(v)}`);
    }
  }

  private number(n: number): void {
    if (!Number.isSafeInteger(n)) {
      this.room(9);
      this.buf[this.pos++] = 0xcb;
      this.view.setFloat64(this.pos, n);
      this.pos += 8;
      return;
    }
    if (n >= 0) {
      if (n < 0x80) return this.u8(n);
      if (n < 0x100) return this.headed(0xcc, n, 1);
      if (n < 0x10000) return this.headed(0xcd, n, 2);
      if (n < 0x100000000) return this.headed(0xce, n, 4);
      this.room(9);
      this.buf[this.pos++] = 0xcf;
      this.view.setUint32(this.pos, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
      return;
    }
    if (n >= -0x20) return this.u8(0xe0 | (n + 0x20));
    this.room(9);
    if (n >= -0x80) {
      this.buf[this.pos++] = 0xd0;
      this.view.setInt8(this.pos++, n);
    } else if (n >= -0x8000) {
      this.buf[this.pos++] = 0xd1;
      this.view.setInt16(this.pos, n);
      this.pos += 2;
    } else if (n >= -0x80000000) {
      this.buf[this.pos++] = 0xd2;
      this.view.setInt32(this.pos, n);
      this.pos += 4;
    } else {
      this.buf[this.pos++] = 0xd3;
      this.view.setInt32(this.pos, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
    }
  }

  private string(s: string): void {
    // ASCII, the common case, byte by byte; anything else through TextEncoder
    const n = s.length;
    let ascii = n < 256;
    if (ascii) {
      for (let i = 0; i < n; i++) {
        if (s.charCodeAt(i) > 0x7f) {
          ascii = false;
          break;
        }
      }
    }
    if (ascii) {
      this.room(2 + n);
      if (n < 32) this.buf[this.pos++] = 0xa0 + n;
      else {
        this.buf[this.pos++] = 0xd9;
        this.buf[this.pos++] = n;
      }
      for (let i = 0; i < n; i++) this.buf[this.pos++] = s.charCodeAt(i);
      return;
    }
    // as @msgpack/msgpack does: strings over 50 code units through TextEncoder, shorter ones by
    // hand (the two differ only for a lone surrogate)
    const bytes = n > 50 ? textEncoder.encode(s) : utf8Short(s);
    const len = bytes.length;
    if (len < 32) this.u8(0xa0 + len);
    else if (len < 0x100) this.headed(0xd9, len, 1);
    else if (len < 0x10000) this.headed(0xda, len, 2);
    else this.headed(0xdb, len, 4);
    this.room(len);
    this.buf.set(bytes, this.pos);
    this.pos += len;
  }

  private binary(b: Uint8Array): void {
    const len = b.length;
    if (len < 0x100) this.headed(0xc4, len, 1);
    else if (len < 0x10000) this.headed(0xc5, len, 2);
    else this.headed(0xc6, len, 4);
    this.room(len);
    this.buf.set(b, this.pos);
    this.pos += len;
  }

  private array(a: readonly unknown[], depth: number): void {
    const len = a.length;
    if (len < 16) this.u8(0x90 + len);
    else if (len < 0x10000) this.headed(0xdc, len, 2);
    else this.headed(0xdd, len, 4);
    for (let i = 0; i < len; i++) this.value(a[i], depth + 1);
  }

  private map(o: Record<string, unknown>, depth: number): void {
    const keys = Object.keys(o).sort();
    let count = 0;
    for (let i = 0; i < keys.length; i++) if (o[keys[i]!] !== undefined) count++;
    if (count < 16) this.u8(0x80 + count);
    else if (count < 0x10000) this.headed(0xde, count, 2);
    else this.headed(0xdf, count, 4);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = o[k];
      if (v === undefined) continue;
      this.string(k);
      this.value(v, depth + 1);
    }
  }
}

/** UTF-8 of a short string, code unit by code unit: a lone surrogate becomes its own 3 bytes. */
function utf8Short(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out.push(c);
      continue;
    }
    if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if ((d & 0xfc00) === 0xdc00) {
        i++;
        c = ((c & 0x3ff) << 10) + (d & 0x3ff) + 0x10000;
      }
    }
    if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Uint8Array.from(out);
}
