/**
 * Waits for the projector's verdict on records a client wrote: one tail per partition of
 * `twin.changes` and `twin.rejections`, shared by every request waiting on that partition, running
 * only while someone waits.
 *
 * Ordering contract: {@link DecisionWatcher.register} resolves once the tail's start positions are
 * fixed at or below the topics' end offsets *at that moment*; the caller appends afterwards, so the
 * verdict (always written after the append) cannot be missed.
 */
import { decodeOutputRecord, type ChangeRecord, type RejectionRecord } from '@twinlog/codec';
import { TwinlogError, type Log, type LogRecord } from '@twinlog/core';
import { TOPICS } from '@twinlog/projector';
import { sleep } from './sleep.ts';

/** What a waiter learns: every change carrying its corr, or the first rejection carrying it. */
export type Verdict =
  | { readonly accepted: true; readonly changes: readonly ChangeRecord[] }
  | { readonly accepted: false; readonly rejection: RejectionRecord };

interface Waiter {
  readonly expected: number;
  readonly changes: ChangeRecord[];
  readonly resolve: (v: Verdict) => void;
  readonly reject: (e: unknown) => void;
}

interface PartitionTail {
  readonly waiters: Map<string, Waiter>;
  readonly positions: { changes: number; rejections: number };
  ready: Promise<void>;
}

export interface Registration {
  /** Settles with the verdict (never times out by itself). */
  readonly verdict: Promise<Verdict>;
  /** Stop waiting (timeout, failed append). */
  cancel(): void;
}

export class DecisionWatcher {
  private readonly tails = new Map<number, PartitionTail>();
  private closed = false;

  constructor(
    private readonly log: Log,
    private readonly pollIntervalMs: number,
    private readonly onChange: (change: ChangeRecord) => void,
  ) {}

  /**
   * Wait for `expected` change records or one rejection carrying `corr` on partition `partition`.
   * Resolves when it is safe to append.
   */
  async register(partition: number, corr: string, expected: number): Promise<Registration> {
    if (this.closed) throw new TwinlogError('DECISION_TIMEOUT', 'the client is closed', { details: { closed: true } });
    let tail = this.tails.get(partition);
    const fresh = tail === undefined;
    if (tail === undefined) {
      tail = { waiters: new Map(), positions: { changes: 0, rejections: 0 }, ready: Promise.resolve() };
      this.tails.set(partition, tail);
    }
    let resolve!: (v: Verdict) => void;
    let reject!: (e: unknown) => void;
    const verdict = new Promise<Verdict>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    verdict.catch(() => {});
    // added synchronously, so a running tail cannot see an empty map and stop in between
    tail.waiters.set(corr, { expected, changes: [], resolve, reject });
    const t = tail;
    const registration: Registration = { verdict, cancel: () => void t.waiters.delete(corr) };
    if (fresh) t.ready = this.start(partition, t);
    try {
      await t.ready;
    } catch (e) {
      registration.cancel();
      throw e;
    }
    return registration;
  }

  /** Stop every tail; pending waiters are rejected with `reason`. */
  close(reason: unknown): void {
    this.closed = true;
    for (const tail of this.tails.values()) {
      for (const w of tail.waiters.values()) w.reject(reason);
      tail.waiters.clear();
    }
    this.tails.clear();
  }

  private async start(partition: number, tail: PartitionTail): Promise<void> {
    try {
      const [changes, rejections] = await Promise.all([
        this.log.endOffsets(TOPICS.changes),
        this.log.endOffsets(TOPICS.rejections),
      ]);
      tail.positions.changes = changes[partition] ?? 0;
      tail.positions.rejections = rejections[partition] ?? 0;
    } catch (e) {
      this.tails.delete(partition);
      throw e;
    }
    void this.run(partition, tail);
  }

  private async run(partition: number, tail: PartitionTail): Promise<void> {
    try {
      for (;;) {
        if (tail.waiters.size === 0 || this.closed) {
          if (this.tails.get(partition) === tail) this.tails.delete(partition);
          return;
        }
        const a = await this.drain(TOPICS.changes, partition, tail, 'changes');
        const b = await this.drain(TOPICS.rejections, partition, tail, 'rejections');
        if (!a && !b) await sleep(this.pollIntervalMs);
      }
    } catch (e) {
      if (this.tails.get(partition) === tail) this.tails.delete(partition);
      for (const w of tail.waiters.values()) w.reject(e);
      tail.waiters.clear();
    }
  }

  /** Read one topic of the partition to its current end; true when anything was read. */
  private async drain(
    topic: string,
    partition: number,
    tail: PartitionTail,
    which: 'changes' | 'rejections',
  ): Promise<boolean> {
    let any = false;
    for await (const records of this.log.read(topic, partition, { from: tail.positions[which] })) {
      for (const r of records) {
        any = true;
        tail.positions[which] = r.offset + 1;
        if (which === 'changes') this.dispatchChange(r, tail);
        else this.dispatchRejection(r, tail);
      }
    }
    return any;
  }

  private dispatchChange(r: LogRecord, tail: PartitionTail): void {
    const change = decodeQuietly(r, 'change');
    if (change === undefined) return;
    this.onChange(change);
    if (change.corr === undefined) return;
    const w = tail.waiters.get(change.corr);
    if (w === undefined) return;
    w.changes.push(change);
    if (w.changes.length >= w.expected) {
      tail.waiters.delete(change.corr);
      w.resolve({ accepted: true, changes: w.changes });
    }
  }

  private dispatchRejection(r: LogRecord, tail: PartitionTail): void {
    const rejection = decodeQuietly(r, 'rejection');
    if (rejection?.corr === undefined) return;
    const w = tail.waiters.get(rejection.corr);
    if (w === undefined) return;
    tail.waiters.delete(rejection.corr);
    w.resolve({ accepted: false, rejection });
  }
}

function decodeQuietly<K extends 'change' | 'rejection'>(
  r: LogRecord,
  kind: K,
): (K extends 'change' ? ChangeRecord : RejectionRecord) | undefined {
  if (r.value === null) return undefined;
  try {
    return decodeOutputRecord(r.value, kind) as K extends 'change' ? ChangeRecord : RejectionRecord;
  } catch {
    return undefined; // not ours to judge: the feeds' readers report bad records
  }
}
