/**
 * Chunks of bytes from several partitions, written out in partition order (docs/write-path.md,
 * "Replay"): the partition being written goes straight through; any later one that is folded
 * meanwhile in another worker waits in a temporary file (not in memory, however long the audit),
 * and is copied out when its turn comes. The files are removed as they are copied, and all of them
 * at `close`.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const COPY_BYTES = 1024 * 1024;

export class OrderedChunks {
  private next = 0;
  private readonly ended = new Set<number>();
  private readonly files = new Map<number, { fd: number; path: string }>();
  private dir: string | undefined;

  /** `order`: the partitions in the order their bytes are written; `emit` writes bytes out. */
  constructor(
    private readonly order: readonly number[],
    private readonly emit: (chunk: Uint8Array) => void,
  ) {}

  write(partition: number, chunk: Uint8Array): void {
    if (partition === this.order[this.next]) this.emit(chunk);
    else writeSync(this.spill(partition).fd, chunk);
  }

  /** The partition's bytes are all written. */
  end(partition: number): void {
    this.ended.add(partition);
    while (this.next < this.order.length && this.ended.has(this.order[this.next]!)) {
      this.next++;
      const p = this.order[this.next];
      if (p !== undefined) this.copyOut(p);
    }
  }

  close(): void {
    for (const { fd } of this.files.values()) closeSync(fd);
    this.files.clear();
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  private spill(partition: number): { fd: number; path: string } {
    let file = this.files.get(partition);
    if (file === undefined) {
      this.dir ??= mkdtempSync(join(tmpdir(), 'twinlog-audit-'));
      const path = join(this.dir, `p${partition}.bin`);
      file = { fd: openSync(path, 'w+'), path };
      this.files.set(partition, file);
    }
    return file;
  }

  private copyOut(partition: number): void {
    const file = this.files.get(partition);
    if (file === undefined) return;
    this.files.delete(partition);
    for (let at = 0; ;) {
      const buffer = new Uint8Array(COPY_BYTES); // handed to emit: a fresh one each time
      const n = readSync(file.fd, buffer, 0, COPY_BYTES, at);
      if (n === 0) break;
      at += n;
      this.emit(buffer.subarray(0, n));
    }
    closeSync(file.fd);
    rmSync(file.path, { force: true });
  }
}
