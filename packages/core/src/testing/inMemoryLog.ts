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
import { Group, Signal, type Member, type MemberSource } from '../logGroup.ts';
import {
  partitionFor,
  type AppendRecord,
  type AppendResult,
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
    if (t === undefined)
      throw new TwinlogError('LOG_TOPIC_NOT_FOUND', `topic ${name} does not exist`, { details: { topic: name } });
    return t;
  }

  group(name: string): Group {
    let g = this.groups.get(name);
    if (g === undefined) {
      g = new Group(name, { acquire: () => {}, release: () => {}, changed: this.changed });
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
    throw invalid(`partition ${partition} does not exist in topic ${topic} (${t.partitions.length} partitions)`, {
      topic,
      partition,
    });
  }
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw invalid(`offset ${offset} is not a non-negative safe integer`, { offset });
}

/** Where each record of `records` goes, validated before anything is written. */
function placeRecords(topic: string, t: TopicState, records: readonly AppendRecord[]): number[] {
  return records.map((r) => {
    if (typeof r.key !== 'string') throw invalid('record key must be a string', { topic });
    if (r.value !== null && !(r.value instanceof Uint8Array))
      throw invalid('record value must be a Uint8Array or null', { topic });
    if (r.partition === undefined) return partitionFor(r.key, t.partitions.length);
    checkPartition(topic, t, r.partition);
    return r.partition;
  });
}

class InMemoryClient implements InMemoryLog, MemberSource {
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
      if (typeof s.name !== 'string' || !TOPIC_NAME.test(s.name))
        throw invalid(`topic name ${String(s.name)} is not [a-zA-Z0-9._-]{1,249}`, { topic: s.name });
      if (!Number.isInteger(s.partitions) || s.partitions < 1)
        throw invalid(`topic ${s.name}: partitions must be a positive integer`, { topic: s.name });
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

  private write(
    topic: string,
    t: TopicState,
    records: readonly AppendRecord[],
    placed: readonly number[],
  ): AppendResult[] {
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
      throw new TwinlogError('LOG_FENCED', `fence ${batch.fence} was taken by a newer writer`, {
        details: { fence: batch.fence },
      });
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
    const { concurrency } = options;
    if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
      throw invalid('subscribe: concurrency must be a positive integer', { concurrency });
    }
    const counts = options.topics.map((name) => this.cluster.topic(name).partitions.length);
    const partitions = counts[0]!;
    if (counts.some((c) => c !== partitions)) {
      throw new TwinlogError(
        'LOG_CO_PARTITIONING',
        `co-partitioned topics need equal partition counts: ${options.topics.map((name, i) => `${name}=${counts[i]}`).join(', ')}`,
        {
          details: { topics: options.topics, counts },
        },
      );
    }
    const group = this.cluster.group(options.group);
    const member = group.join(this, options, partitions);
    this.subscriptions.add(member);
    return { stop: () => member.stop() };
  }

  // MemberSource: what this client's group members read through.

  get maxBatchSize(): number {
    return this.cluster.maxBatchSize;
  }

  committedOffsetOf(group: string, topic: string, partition: number): number | undefined {
    return this.cluster.committed.get(offsetKey(group, topic, partition));
  }

  currentEndOffsets(topic: string): number[] {
    return this.cluster.topic(topic).partitions.map((p) => p.length);
  }

  fetchRecords(topic: string, partition: number, from: number, max: number): LogRecord[] {
    return this.cluster.topic(topic).partitions[partition]!.slice(from, from + max);
  }

  forget(member: Member): void {
    this.subscriptions.delete(member);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.subscriptions].map((m) => m.stop()));
    this.closed = true;
    this.cluster.changed.notify();
  }
}
