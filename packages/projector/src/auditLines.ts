/**
 * A fleet's audit trail as text, on both cores (docs/write-path.md, "Replay"): the lines are made
 * by a module named in an `AuditLineSpec`, which every worker thread loads for itself (a function
 * cannot cross threads), and they come back in the order a replay in this thread writes them
 * (partition by partition, each in fold order), so the text is the same byte for byte whatever the
 * number of workers.
 */
import type { Log } from '@twinlog/core';
import type { AuditLinesJob } from './auditEntry.ts';
import { replay, type ReplayOptions, type ReplayResult, type WorkerLogSpec } from './replay.ts';

export interface AuditLinesOptions extends AuditLinesJob {
  readonly log: Log;
  /** Only records appended at or before this time (ms since the epoch), as replay's `until`. */
  readonly until?: number;
  /** The lines, in order, as UTF-8 bytes in chunks (a chunk may end inside a line). */
  readonly onChunk: (chunk: Uint8Array) => void;
  /** Worker threads (default 0: this thread), with or without `workerLog`, as replay's. */
  readonly workers?: number;
  readonly workerLog?: WorkerLogSpec;
  readonly onProgress?: ReplayOptions['onProgress'];
}

/**
 * Write a fleet's audit trail as lines made by `lines` (e.g. JSON lines or CSV rows), through
 * `onChunk`. With `workers` the partitions are audited in worker threads and the text is the same. Returns the replay's counts and how many lines were written.
 *
 * @example
 * await auditLines({ log, lines: { module: import.meta.resolve('./myLines.js'), export: 'jsonLines', options: {} }, onChunk: (c) => process.stdout.write(c) })
 */
export async function auditLines(options: AuditLinesOptions): Promise<ReplayResult & { readonly lines: number }> {
  const { log, until, onChunk, workers = 0, workerLog, onProgress, ...job } = options;
  let lines = 0;
  const result = await replay({
    log,
    keepStates: false,
    workers,
    ...(workerLog === undefined ? {} : { workerLog }),
    ...(until === undefined ? {} : { until }),
    ...(onProgress === undefined ? {} : { onProgress }),
    audit: job,
    onChunk: (chunk) => {
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
      onChunk(chunk);
    },
  });
  return { ...result, lines };
}
