/**
 * Where a command streams its lines (JSON lines of twins, an audit trail): standard output, or a
 * file written with blocking writes in chunks, so memory stays flat however many lines there are.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export interface LineSink {
  /** Queue one line (without its newline). */
  line(text: string): void;
  /** Write UTF-8 bytes of lines (with their newlines) after what is queued. */
  bytes(chunk: Uint8Array): void;
  /** Write what is queued and close the file (standard output stays open). */
  close(): void;
}

const CHUNK_CHARS = 64 * 1024;

/** `-` (or no target) is standard output through `out`; anything else is a file path, created or truncated. */
export function openLineSink(target: string | undefined, out: (text: string) => void): LineSink {
  const fd = target === undefined || target === '-' ? undefined : openSync(target, 'w');
  let chunk = '';
  const decoder = new TextDecoder(); // standard output takes text: bytes are decoded, a character split across chunks kept
  const flush = (): void => {
    if (chunk === '') return;
    if (fd === undefined) out(chunk);
    else writeSync(fd, chunk);
    chunk = '';
  };
  return {
    line(text) {
      chunk += `${text}\n`;
      if (chunk.length >= CHUNK_CHARS) flush();
    },
    bytes(bytes) {
      flush();
      if (fd === undefined) chunk = decoder.decode(bytes, { stream: true });
      else writeSync(fd, bytes);
    },
    close() {
      chunk += decoder.decode();
      flush();
      if (fd !== undefined) closeSync(fd);
    },
  };
}
