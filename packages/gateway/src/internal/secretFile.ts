/**
 * Files that hold secrets (device keys, the service policy): written 0600 inside a 0700 folder,
 * the data fsynced before the rename and the folder fsynced after it, so a crash leaves either the
 * old file or the new one, never a torn or world-readable one (docs/security.md).
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Create `dir` (and its parents) if needed and make it 0700. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * Replace `file` with `text` atomically and durably, readable by its owner only.
 *
 * @example
 * writeSecretFile(join(data, 'service-policy.json'), JSON.stringify(policy))
 */
export function writeSecretFile(file: string, text: string): void {
  const dir = dirname(file);
  ensurePrivateDir(dir);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600); // an old temp file keeps its mode through open
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
