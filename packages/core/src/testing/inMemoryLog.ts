/**
 * An in-memory {@link Log}: the reference adapter of the `Log` port, for domain tests that need a
 * log but no I/O. It passes `runLogAcceptanceSuite` and keeps the port's semantics: murmur2
 * partitioning, per-partition offsets from 0, atomic `commitBatch` with fencing, committed group
 * offsets, and co-partitioned group subscriptions with `onAssign`/`onRevoke`.
 *
 * Pure TypeScript like the rest of core: no timers and no clock of its own. Subscribers wait on a
 * promise that every append resolves, and append times come from the `now` option (a logical
 * counter by default). Compacted topics keep every record (compaction is an optimization readers
 * may not rely on, as with Kafka).
 */
import { TwinlogError } from '../errors.ts';
import {
  partitionFor,
  type AppendRecord,
  type AppendResult,
  type Batch,
  type CommitBatch,
  type Log,
  type LogRecord,
  type OffsetCommit,
  type ReadOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
} from '../log.ts';

/** Options of {@link createInMemoryLog}. */
export interface InMemoryLogOptions {
  /**
   * The append-time clock, in ms since the epoch. Core reads no clock, so the default is a logical
   * counter (0, 1, 2, …); tests that check stamp skew pass `() => Date.now()`.
   */
  readonly now?: () => number;
  /** Most records handed to one `eachBatch` call or yielded by one `read` step (default 100). */
  readonly maxBatchSize?: number;
}

/** An in-memory log; {@link InMemoryLog.connect} opens another client on the same data. */
export interface InMemoryLog extends Log {
  /**
   * Another client of the same topics, offsets and groups, as a second process would be: it has
   * its own fences (a newer client using a fence id fences this one) and its own group members.
   * Closing one client leaves the others open.
   */
  connect(): InMemoryLog;
}

/**
 * Creates an empty in-memory log.
 *
 * Use it in unit tests of anything that talks to the `Log` port (projector stages, replay, the
 * reconciler stage). Records are copied on append; records handed out must not be mutated.
 * Subscriptions are delivered from microtasks, so a test awaits them (e.g. with `vi.waitFor`). A
 * `read` whose `to` lies past the end waits for the appends (there is no timer to give up on).
 *
 * @example
 * const log = createInMemoryLog({ now: () => Date.now() });
 * await log.ensureTopics([{ name: 'twin.device', partitions: 4 }]);
 * const [where] = await log.append('twin.device', [{ key: 'dev-1', value: new Uint8Array([1]) }]);
 * // where.partition === partitionFor('dev-1', 4), where.offset === 0
 */
export function createInMemoryLog({ now, maxBatchSize = 100 }: InMemoryLogOptions = {}): InMemoryLog {
  let tick = 0;
  const cluster = new Cluster(now ?? (() => tick++), maxBatchSize);
  return new InMemoryClient(cluster);
}

/* ------------------------------------------------------------------------------------------------ */

/** A promise that is resolved on `notify()` and replaced by a fresh one. */
class Signal {
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
  wait(): Promise<void> {
    return this.promise;
  }
  notify(): void {
    const resolve = this.resolve;
    this.reset();
    resolve();
  }
}

interface TopicState {
  readonly partitions: LogRecord[][];
  readonly compacted: boolean;
}

class Cluster {
  readonly topics = new Map<string, TopicState>();
  readonly committed = new Map<string, number>();
  readonly fences = new Map<string, number>();
  readonly groups = new Map<string, Group>();
  readonly changed = new Signal();
  constructor(
    readonly now: () => number,
    readonly maxBatchSize: number,
  ) {}

  topic(name: string): TopicState {
    const t = this.topics.get(name);
    if (t === undefined) throw new TwinlogError('LOG_TOPIC_NOT_FOUND', `topic ${name} does not exist`, { details: { topic: name } });
    return t;
  }

  group(name: string): Group {
    let g = this.groups.get(name);
    if (g === undefined) {
      g = new Group(this, name);
      this.groups.set(name, g);
    }
    return g;
  }
}

/** Kafka's legal topic names, enforced everywhere so a name that works in tests works on Kafka. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function offsetKey(group: string, topic: string, partition: number): string {
  return `${group}\u0000${topic}\u0000${partition}`;
}

function invalid(message: string, details: Record<string, unknown> = {}): TwinlogError {
  return new TwinlogError('LOG_ARGUMENT_INVALID', message, { details });
}

function checkPartition(topic: string, t: TopicState, partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= t.partitions.length) {
    throw invalid(`partition ${partition} does not exist in topic ${topic} (${t.partitions.length} partitions)`, { topic, partition });
  }
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalid(`offset ${offset} is not a non-negative safe integer`, { offset });
}

/** Where each record of `records` goes, validated before anything is written. */
function placeRecords(topic: string, t: TopicState, records: readonly AppendRecord[]): number[] {
  return records.map((r) => {
    if (typeof r.key !== 'string') throw invalid('record key must be a string', { topic });
    if (r.value !== null && !(r.value instanceof Uint8Array)) throw invalid('record value must be a Uint8Array or null', { topic });
    if (r.partition === undefined) return partitionFor(r.key, t.partitions.length);
    checkPartition(topic, t, r.partition);
    return r.partition;
  });
}

class InMemoryClient implements InMemoryLog {
  private closed = false;
  private readonly epochs = new Map<string, number>();
  readonly subscriptions = new Set<Member>();

  constructor(private readonly cluster: Cluster) {}

  connect(): InMemoryLog {
    this.assertOpen();
    return new InMemoryClient(this.cluster);
  }

  private assertOpen(): void {
    if (this.closed) throw new TwinlogError('LOG_CLOSED', 'the log is closed');
  }

  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    this.assertOpen();
    for (const s of specs) {
      if (typeof s.name !== 'string' || !TOPIC_NAME.test(s.name)) throw invalid(`topic name ${String(s.name)} is not [a-zA-Z0-9._-]{1,249}`, { topic: s.name });
      if (!Number.isInteger(s.partitions) || s.partitions < 1) throw invalid(`topic ${s.name}: partitions must be a positive integer`, { topic: s.name });
    }
    for (const s of specs) {
      if (this.cluster.topics.has(s.name)) continue;
      this.cluster.topics.set(s.name, {
        partitions: Array.from({ length: s.partitions }, () => []),
        compacted: s.compacted ?? false,
      });
    }
  }

  async partitionCount(topic: string): Promise<number> {
    this.assertOpen();
    return this.cluster.topic(topic).partitions.length;
  }

  async append(topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> {
    this.assertOpen();
    const t = this.cluster.topic(topic);
    const placed = placeRecords(topic, t, records);
    const results = this.write(topic, t, records, placed);
    this.cluster.changed.notify();
    return results;
  }

  private write(topic: string, t: TopicState, records: readonly AppendRecord[], placed: readonly number[]): AppendResult[] {
    const now = this.cluster.now();
    return records.map((r, i) => {
      const partition = placed[i]!;
      const log = t.partitions[partition]!;
      const previous = log[log.length - 1];
      const record: LogRecord = Object.freeze({
        topic,
        partition,
        offset: log.length,
        key: r.key,
        value: r.value === null ? null : r.value.slice(),
        timestamp: previous === undefined ? now : Math.max(now, previous.timestamp),
        headers: Object.freeze({ ...r.headers }),
      });
      log.push(record);
      return { partition, offset: record.offset };
    });
  }

  async commitBatch(batch: CommitBatch): Promise<void> {
    this.assertOpen();
    // Validate everything first: the batch is all-or-nothing.
    const plans = batch.appends.map((a) => {
      const t = this.cluster.topic(a.topic);
      return { topic: a.topic, t, records: a.records, placed: placeRecords(a.topic, t, a.records) };
    });
    const offsets = batch.offsets ?? [];
    this.checkOffsets(offsets);
    const current = this.cluster.fences.get(batch.fence);
    const mine = this.epochs.get(batch.fence);
    let epoch = mine;
    if (mine === undefined) epoch = (current ?? 0) + 1;
    else if (mine !== current) {
      throw new TwinlogError('LOG_FENCED', `fence ${batch.fence} was taken by a newer writer`, { details: { fence: batch.fence } });
    }
    this.cluster.fences.set(batch.fence, epoch!);
    this.epochs.set(batch.fence, epoch!);
    for (const p of plans) this.write(p.topic, p.t, p.records, p.placed);
    this.setOffsets(offsets);
    this.cluster.changed.notify();
  }

  private checkOffsets(offsets: readonly OffsetCommit[]): void {
    for (const o of offsets) {
      checkPartition(o.topic, this.cluster.topic(o.topic), o.partition);
      checkOffset(o.offset);
    }
  }

  private setOffsets(offsets: readonly OffsetCommit[]): void {
    for (const o of offsets) this.cluster.committed.set(offsetKey(o.group, o.topic, o.partition), o.offset);
  }

  async commitOffsets(offsets: readonly OffsetCommit[]): Promise<void> {
    this.assertOpen();
    this.checkOffsets(offsets);
    this.setOffsets(offsets);
  }

  async committedOffsets(group: string, topic: string): Promise<(number | undefined)[]> {
    this.assertOpen();
    const t = this.cluster.topic(topic);
    return t.partitions.map((_, p) => this.cluster.committed.get(offsetKey(group, topic, p)));
  }

  async endOffsets(topic: string): Promise<number[]> {
    this.assertOpen();
    return this.cluster.topic(topic).partitions.map((p) => p.length);
  }

  async *read(topic: string, partition: number, options: ReadOptions): AsyncIterable<readonly LogRecord[]> {
    this.assertOpen();
    const t = this.cluster.topic(topic);
    checkPartition(topic, t, partition);
    checkOffset(options.from);
    if (options.to !== undefined) checkOffset(options.to);
    const log = t.partitions[partition]!;
    const end = options.to ?? log.length;
    let position = options.from;
    while (position < end) {
      if (position >= log.length) {
        // `to` lies beyond the end: wait for appends.
        await this.cluster.changed.wait();
        this.assertOpen();
        continue;
      }
      const chunk = log.slice(position, Math.min(end, position + this.cluster.maxBatchSize));
      position += chunk.length;
      yield chunk;
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.assertOpen();
    if (options.topics.length === 0) throw invalid('subscribe needs at least one topic');
    const counts = options.topics.map((name) => this.cluster.topic(name).partitions.length);
    const partitions = counts[0]!;
    if (counts.some((c) => c !== partitions)) {
      throw new TwinlogError('LOG_CO_PARTITIONING', `co-partitioned topics need equal partition counts: ${options.topics.map((name, i) => `${name}=${counts[i]}`).join(', ')}`, {
        details: { topics: options.topics, counts },
      });
    }
    const group = this.cluster.group(options.group);
    const member = group.join(this, options, partitions);
    this.subscriptions.add(member);
    return { stop: () => member.stop() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.subscriptions].map((m) => m.stop()));
    this.closed = true;
    this.cluster.changed.notify();
  }
}

/* ------------------------------------------------------------------------------------------------ */

/**
 * A consumer group: its members and a serial queue of rebalances. Partition index *i* of every
 * subscribed topic goes to one member (range assignment in join order).
 */
class Group {
  readonly members: Member[] = [];
  private queue: Promise<void> = Promise.resolve();
  private topics: string | undefined;

  constructor(
    readonly cluster: Cluster,
    readonly name: string,
  ) {}

  join(client: InMemoryClient, options: SubscribeOptions, partitions: number): Member {
    const topics = [...options.topics].sort().join('\u0000');
    if (this.members.length > 0 && topics !== this.topics) {
      throw invalid(`members of group ${this.name} must subscribe to the same topics`, { group: this.name, topics: options.topics });
    }
    this.topics = topics;
    const member = new Member(this, client, options, partitions);
    this.members.push(member);
    this.enqueue(() => this.rebalance()).catch((e: unknown) => {
      for (const m of this.members) m.fail(e);
    });
    member.start();
    return member;
  }

  enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Leaves the group: revoke (unless failed), stop the loop, rebalance the rest. */
  async leave(member: Member): Promise<void> {
    await member.pause();
    if (!member.failed && member.assigned.size > 0) {
      await member.callback(member.options.onRevoke, sorted(member.assigned));
    }
    member.assigned.clear();
    member.finish();
    const i = this.members.indexOf(member);
    if (i >= 0) this.members.splice(i, 1);
    if (this.members.length > 0) await this.rebalance();
  }

  /**
   * Moves partitions to their target owners: every partition is first revoked from its old owner
   * (after its running batch ends), then assigned to the new one, so no two members ever hold the
   * same partition index. Members on their way out get nothing.
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
      for (const p of added) m.assign(p);
    }
    for (const m of live) m.resume();
  }
}

function sorted(set: ReadonlySet<number>): number[] {
  return [...set].sort((a, b) => a - b);
}

/** Range assignment of `partitions` indexes to `members` members: contiguous blocks, join order. */
function assignRange(members: number, partitions: number): Set<number>[] {
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

/** One subscription: a loop that hands batches of its assigned partitions to `eachBatch`. */
class Member {
  readonly assigned = new Set<number>();
  private readonly positions = new Map<string, number>();
  private readonly wake = new Signal();
  private paused = true;
  private running: Promise<void> | undefined;
  private cursor = 0;
  stopping = false;
  private done = false;
  failed = false;
  private error: unknown;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly group: Group,
    private readonly client: InMemoryClient,
    readonly options: SubscribeOptions,
    readonly partitions: number,
  ) {}

  start(): void {
    void this.loop();
  }

  /** Stop starting batches; resolves when none is running. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.running !== undefined) await this.running;
  }

  resume(): void {
    if (this.stopping) return;
    this.paused = false;
    this.wake.notify();
  }

  finish(): void {
    this.done = true;
    this.wake.notify();
  }

  assign(p: number): void {
    this.assigned.add(p);
    for (const topic of this.options.topics) {
      this.positions.set(`${topic}\u0000${p}`, this.group.cluster.committed.get(offsetKey(this.group.name, topic, p)) ?? 0);
    }
  }

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

  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = e;
    this.paused = true;
    void this.stop().catch(() => undefined);
  }

  stop(): Promise<void> {
    if (this.stopped === undefined) {
      this.stopping = true;
      this.paused = true;
      this.stopped = this.group.enqueue(() => this.group.leave(this)).then(() => {
        this.client.subscriptions.delete(this);
      });
    }
    return this.stopped.then(() => {
      if (this.failed) throw this.error;
    });
  }

  /** The next (topic, partition) with records past its position, round-robin. */
  private nextBatch(): Batch | undefined {
    const keys = [...this.positions.keys()];
    for (let k = 0; k < keys.length; k++) {
      const key = keys[(this.cursor + k) % keys.length]!;
      const [topic, p] = key.split('\u0000') as [string, string];
      const partition = Number(p);
      const log = this.group.cluster.topics.get(topic)!.partitions[partition]!;
      const position = this.positions.get(key)!;
      if (position >= log.length) continue;
      this.cursor = (this.cursor + k + 1) % keys.length;
      return { topic, partition, records: log.slice(position, position + this.group.cluster.maxBatchSize) };
    }
    return undefined;
  }

  private async loop(): Promise<void> {
    while (!this.done) {
      if (this.paused) {
        await this.wake.wait();
        continue;
      }
      const batch = this.nextBatch();
      if (batch === undefined) {
        await Promise.race([this.group.cluster.changed.wait(), this.wake.wait()]);
        continue;
      }
      const key = `${batch.topic}\u0000${batch.partition}`;
      const last = batch.records[batch.records.length - 1]!;
      let ok = false;
      this.running = (async () => {
        try {
          await this.options.eachBatch(batch);
          ok = true;
        } catch (e) {
          this.fail(e);
        }
      })();
      await this.running;
      this.running = undefined;
      if (ok && this.positions.has(key)) this.positions.set(key, last.offset + 1);
    }
  }
}
