/**
 * Consumer groups for `Log` adapters that serve groups in one process (the in-memory log, the
 * embedded SQLite log): the members of a group share the partition indexes of their
 * co-partitioned topics, range-assigned in join order. A rebalance first revokes every partition
 * that moves (after its running batch ends), then assigns it, so no two members ever hold the same
 * partition index. Rebalances, joins and leaves run one at a time per group.
 *
 * Pure: no timers and no I/O. Members wait on a {@link Signal} that the adapter fires when records
 * may have arrived; adapters that must notice other processes' writes poll and fire it themselves.
 */
import { TwinlogError } from './errors.ts';
import type { Batch, LogRecord, SubscribeOptions } from './log.ts';

/** A promise that `notify()` resolves and replaces, to wake every waiter at once. */
export class Signal {
  private resolve!: () => void;
  private promise!: Promise<void>;

  constructor() {
    this.reset();
  }

  private reset(): void {
    this.promise = new Promise<void>((r) => {
      this.resolve = r;
    });
  }

  /** Resolves on the next `notify()`. */
  wait(): Promise<void> {
    return this.promise;
  }

  notify(): void {
    const resolve = this.resolve;
    this.reset();
    resolve();
  }
}
/** What a member reads through: its own client's connection. */
export interface MemberSource {
  readonly maxBatchSize: number;
  committedOffsetOf(group: string, topic: string, partition: number): number | undefined;
  currentEndOffsets(topic: string): number[];
  /** Records of one partition from `from` on, at most `max`, in offset order. */
  fetchRecords(topic: string, partition: number, from: number, max: number): LogRecord[];
  /** Called once the member has left its group. */
  forget(member: Member): void;
}

/** Process-level services a group needs: the lease and change notification. */
export interface GroupHooks {
  /** Take the group for this process (the first member joins). @throws TwinlogError LOG_GROUP_BUSY */
  acquire(): void;
  /** Give the group up (the last member left). */
  release(): void;
  /** Fires when records may have been appended (this process or another). */
  readonly changed: Signal;
}

/** One consumer group of this process: its members and a serial queue of rebalances. */
export class Group {
  readonly members: Member[] = [];
  private queue: Promise<void> = Promise.resolve();
  private topics: string | undefined;

  constructor(
    readonly name: string,
    private readonly hooks: GroupHooks,
  ) {}

  /** Adds a member; its partitions come with the rebalance this queues. */
  join(source: MemberSource, options: SubscribeOptions, partitions: number): Member {
    const topics = [...options.topics].sort().join('\u0000');
    if (this.members.length > 0 && topics !== this.topics) {
      throw new TwinlogError(
        'LOG_ARGUMENT_INVALID',
        `members of group ${this.name} must subscribe to the same topics`,
        {
          details: { group: this.name, topics: options.topics },
        },
      );
    }
    if (this.members.length === 0) this.hooks.acquire();
    this.topics = topics;
    const member = new Member(this, source, options, partitions, this.hooks.changed);
    this.members.push(member);
    this.enqueue(() => this.rebalance()).catch((e: unknown) => this.failAll(e));
    member.start();
    return member;
  }

  /** Runs `step` after every step queued before it (joins, leaves and rebalances never overlap). */
  enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Fails every member (e.g. the lease was lost): they leave without revoking. */
  failAll(error: unknown): void {
    for (const m of this.members) m.fail(error);
  }

  /** Takes `member` out: revoke its partitions (unless it failed), end its loop, rebalance the rest. */
  async leave(member: Member): Promise<void> {
    await member.pause();
    if (!member.failed && member.assigned.size > 0)
      await member.callback(member.options.onRevoke, sorted(member.assigned));
    for (const p of [...member.assigned]) member.unassign(p);
    member.finish();
    const i = this.members.indexOf(member);
    if (i >= 0) this.members.splice(i, 1);
    if (this.members.length === 0) this.hooks.release();
    else await this.rebalance();
  }

  /**
   * Moves partitions to their range-assigned owners: every partition that moves is revoked from its
   * old owner (after its running batch ends) before the new owner is told, so no two members ever
   * hold one partition index. Members on their way out get nothing.
   */
  private async rebalance(): Promise<void> {
    const live = this.members.filter((m) => !m.stopping);
    const ranges = assignRange(live.length, live[0]?.partitions ?? 0);
    const target = new Map<Member, Set<number>>(live.map((m, j) => [m, ranges[j]!]));
    for (const m of this.members) {
      const keep = target.get(m) ?? new Set<number>();
      const revoked = sorted(m.assigned).filter((p) => !keep.has(p));
      if (revoked.length === 0) continue;
      await m.pause();
      await m.callback(m.options.onRevoke, revoked);
      for (const p of revoked) m.unassign(p);
    }
    for (const m of live) {
      const added = sorted(target.get(m)!).filter((p) => !m.assigned.has(p));
      if (added.length === 0 || m.failed) continue;
      await m.pause();
      if (!(await m.callback(m.options.onAssign, added))) continue;
      try {
        for (const p of added) m.assign(p);
      } catch (e) {
        m.fail(e);
      }
    }
    for (const m of live) m.resume();
  }
}

function sorted(set: ReadonlySet<number>): number[] {
  return [...set].sort((a, b) => a - b);
}

/** Range assignment of `partitions` indexes to `members` members: contiguous blocks, join order. */
export function assignRange(members: number, partitions: number): Set<number>[] {
  const out = Array.from({ length: members }, () => new Set<number>());
  if (members === 0) return out;
  const base = Math.floor(partitions / members);
  const extra = partitions % members;
  let p = 0;
  for (let j = 0; j < members; j++) {
    const size = base + (j < extra ? 1 : 0);
    for (let k = 0; k < size; k++) out[j]!.add(p++);
  }
  return out;
}

/** One subscription: a loop handing batches of its assigned partitions to `eachBatch`. */
export class Member {
  readonly assigned = new Set<number>();
  private readonly positions = new Map<string, number>();
  private readonly wake = new Signal();
  private paused = true;
  /** Batches in `eachBatch`, by topic and partition (at most `options.concurrency`, default 1). */
  private readonly inflight = new Map<string, Promise<void>>();
  private cursor = 0;
  stopping = false;
  private done = false;
  failed = false;
  private error: unknown;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly group: Group,
    private readonly source: MemberSource,
    readonly options: SubscribeOptions,
    readonly partitions: number,
    private readonly changed: Signal,
  ) {}

  /** Starts the delivery loop (paused until the first assignment). */
  start(): void {
    void this.loop();
  }

  /** Stops starting batches; resolves when none is running. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.inflight.size > 0) await Promise.all(this.inflight.values());
  }

  /** Lets the loop deliver again (no-op once stopping). */
  resume(): void {
    if (this.stopping) return;
    this.paused = false;
    this.wake.notify();
  }

  /** Ends the loop for good. */
  finish(): void {
    this.done = true;
    this.wake.notify();
  }

  /** Takes partition `p` of every subscribed topic, from the group's committed offsets (or 0). */
  assign(p: number): void {
    this.assigned.add(p);
    for (const topic of this.options.topics) {
      this.positions.set(`${topic}\u0000${p}`, this.source.committedOffsetOf(this.group.name, topic, p) ?? 0);
    }
  }

  /** Drops partition `p` of every subscribed topic. */
  unassign(p: number): void {
    this.assigned.delete(p);
    for (const topic of this.options.topics) this.positions.delete(`${topic}\u0000${p}`);
  }

  /** Runs a user callback; a throw fails the member (it leaves the group). True when it succeeded. */
  async callback<A>(fn: ((arg: A) => Promise<void>) | undefined, arg: A): Promise<boolean> {
    if (this.failed) return false;
    if (fn === undefined) return true;
    try {
      await fn(arg);
      return true;
    } catch (e) {
      this.fail(e);
      return false;
    }
  }

  /** Records the error that ends this member and makes it leave. */
  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = e;
    this.paused = true;
    this.stop().catch(() => undefined);
  }

  /** Leaves the group; rejects with the error that failed the member, if one did. */
  stop(): Promise<void> {
    if (this.stopped === undefined) {
      this.stopping = true;
      this.paused = true;
      this.stopped = this.group.enqueue(() => this.group.leave(this)).finally(() => this.source.forget(this));
    }
    return this.stopped.then(() => {
      if (this.failed) throw this.error;
    });
  }

  /** The next (topic, partition) with records past its position, round-robin. */
  private nextBatch(): Batch | undefined {
    // a (topic, partition) whose batch is still in `eachBatch` is skipped: its position has not moved
    const keys = [...this.positions.keys()];
    const ends = new Map<string, number[]>();
    for (let k = 0; k < keys.length; k++) {
      const key = keys[(this.cursor + k) % keys.length]!;
      const [topic, p] = key.split('\u0000') as [string, string];
      const partition = Number(p);
      let topicEnds = ends.get(topic);
      if (topicEnds === undefined) {
        topicEnds = this.source.currentEndOffsets(topic);
        ends.set(topic, topicEnds);
      }
      const end = topicEnds[partition] ?? 0;
      if (this.inflight.has(key)) continue;
      const position = this.positions.get(key)!;
      if (position >= end) continue;
      const records = this.source.fetchRecords(topic, partition, position, this.source.maxBatchSize);
      if (records.length === 0) {
        this.positions.set(key, end); // the rest was compacted away
        continue;
      }
      this.cursor = (this.cursor + k + 1) % keys.length;
      return { topic, partition, records, lag: Math.max(0, end - (records[records.length - 1]!.offset + 1)) };
    }
    return undefined;
  }

  private async loop(): Promise<void> {
    const limit = Math.max(1, this.options.concurrency ?? 1);
    while (!this.done) {
      if (this.paused) {
        await this.wake.wait();
        continue;
      }
      if (this.inflight.size >= limit) {
        await Promise.race([...this.inflight.values(), this.wake.wait()]);
        continue;
      }
      let batch: Batch | undefined;
      try {
        batch = this.nextBatch();
      } catch (e) {
        this.fail(e);
        continue;
      }
      if (batch === undefined) {
        await Promise.race([this.changed.wait(), this.wake.wait(), ...this.inflight.values()]);
        continue;
      }
      const key = `${batch.topic}\u0000${batch.partition}`;
      const last = batch.records[batch.records.length - 1]!;
      const current = batch;
      const run = (async () => {
        try {
          await this.options.eachBatch(current);
        } catch (e) {
          this.fail(e);
          return;
        }
        if (this.positions.has(key)) this.positions.set(key, last.offset + 1);
      })();
      // tracked until it has left the map, so a loop woken by it sees the key free again
      this.inflight.set(
        key,
        run.finally(() => this.inflight.delete(key)),
      );
    }
  }
}
