/**
 * The twinlog client: what a Kafka producer or consumer uses to write twin events and read the
 * projector's output, over any `Log` (Kafka, the embedded SQLite log, the in-memory log).
 *
 * Writes: each record is a {@link TwinEvent} stamped by the client's own hybrid logical clock, with
 * the id `(writerId, seq)`, validated with core's `validateEvent` before anything is appended, and
 * appended with key = device id (back-end sections and lifecycle to `twin.backend`, reported to
 * `twin.device`). A write with `ifMatch` / `ifVersion` is a *command*: the projector that owns the
 * device's partition decides it, and the call resolves with that decision, read from
 * `twin.changes` (accepted) and `twin.rejections` (rejected) by its correlation id.
 *
 * Reads: {@link TwinClient.getTwin} renders the latest snapshot; the feeds
 * ({@link TwinClient.changes} …) are async iterators over the output topics.
 */
import { randomBytes } from 'node:crypto';
import { produce } from 'immer';
import {
  decodeOutputRecord,
  encodeEvent,
  type ChangeRecord,
  type DeadLetterRecord,
  type DeltaRecord,
  type RejectionRecord,
  type SnapshotRecord,
} from '@twinlog/codec';
import {
  createHybridClock,
  diffMergePatch,
  ENVELOPE_VERSION,
  dotKey,
  fromStateDoc,
  isIdempotencyKey,
  isPlainObject,
  isValidHlc,
  partitionFor,
  renderTwin,
  TwinlogError,
  validateEvent,
  type Condition,
  type Dot,
  type EventKind,
  type Hlc,
  type JsonObject,
  type Log,
  type Patch,
  type Section,
  type TwinDocument,
  type TwinEvent,
  type TwinLimits,
  type TwinlogErrorCode,
} from '@twinlog/core';
import { TOPICS } from '@twinlog/projector';
import { DecisionWatcher, type Registration, type Verdict } from './internal/decisionWatcher.ts';
import { tailTopic, type FeedOptions, type TwinFeed } from './internal/tailTopic.ts';

export type { FeedOptions, FeedStart, TwinFeed } from './internal/tailTopic.ts';

/**
 * Options of {@link createTwinClient}.
 *
 * @example
 * const options: TwinClientOptions = { log, physicalNow: () => Date.now(), actor: 'fleet-app', decisionTimeoutMs: 5_000 }
 */
export interface TwinClientOptions {
  readonly log: Log;
  /** Physical clock in ms since the epoch (e.g. `Date.now`): the source of the client's HLC. */
  readonly physicalNow: () => number;
  /** Who writes (app id, policy name, device id): the events' `actor`, for the audit trail. */
  readonly actor: string;
  /**
   * This client's writer id, the first half of every event id (printable ASCII, ≤ 128). Default: a
   * fresh random incarnation, `client-<8 hex>` ({@link randomWriterIdUnsafe}).
   *
   * Gotcha: event ids are deduplicated forever (within the fold's window), so a fixed writer id
   * must never restart its sequence: pass `firstSeq` above every sequence it already used, or
   * keep the default random incarnation.
   */
  readonly writerId?: string;
  /** First sequence number of this incarnation (default 0). */
  readonly firstSeq?: number;
  /** How long a command waits for its decision before `DECISION_TIMEOUT`, ms (default 10 000). */
  readonly decisionTimeoutMs?: number;
  /** Sleep between polls of the output topics when nothing is new, ms (default 25). */
  readonly pollIntervalMs?: number;
  /** Patch limits for validation before the log (default IoT Hub's). */
  readonly limits?: Partial<TwinLimits>;
}

/**
 * Where an unconditional write landed.
 *
 * @example
 * const { id, stamp, offset } = await client.mergeDesired('dev1', { fw: '1.2' })
 * // id = { writer: 'client-3f2a9c1b', seq: 7 }: the dedupe key of the event
 */
export interface WriteReceipt {
  readonly id: Dot;
  readonly stamp: Hlc;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** Present when the write was correlated (a request of several records, or `wait`). */
  readonly corr?: string;
}

/**
 * The projector accepted (applied) every record of the request.
 *
 * @example
 * const d = await client.mergeDesired('dev1', { fw: '1.2' }, { ifMatch: twin.etag })
 * if (d.accepted) nextEtag = d.etag
 */
export interface AcceptedDecision {
  readonly accepted: true;
  readonly corr: string;
  readonly ids: readonly Dot[];
  /**
   * Present when this write retried one the projector had already applied (same idempotency key
   * or same ids): the original's first id. Nothing was applied again; the versions and etag are
   * the twin's when the retry was answered, and `changes` is empty (docs/idempotency.md).
   */
  readonly duplicateOf?: Dot;
  /** Twin versions after the request (from its last change record). */
  readonly version: number;
  readonly desiredVersion: number;
  readonly reportedVersion: number;
  /**
   * The twin's etag right after the decision; commands only (the projector records it with the
   * decision, the client reads it from the snapshot committed with it). Absent for `wait` writes.
   */
  readonly etag?: string;
  /** The change records of the request, in log order. */
  readonly changes: readonly ChangeRecord[];
}

/**
 * The projector refused the request; nothing of a refused command unit was applied.
 *
 * @example
 * const d = await client.mergeTags('dev1', { site: 'b' }, { ifMatch: oldEtag })
 * if (!d.accepted && d.code === 'PRECONDITION_FAILED') retryWith(d.etag)
 */
export interface RejectedDecision {
  readonly accepted: false;
  readonly corr: string;
  readonly ids: readonly Dot[];
  /** As the projector wrote it: `PRECONDITION_FAILED`, `DEVICE_NOT_FOUND`, `DEVICE_ALREADY_EXISTS` … */
  readonly code: TwinlogErrorCode;
  readonly message: string;
  /** The twin's current etag when a command was refused (`null` when the twin does not exist). */
  readonly etag: string | null;
}

/**
 * What a conditional (or `wait`) write resolves with: a rejection is a value, not an exception.
 *
 * @example
 * const d = await client.createDevice('dev1', { wait: true })
 * console.log(d.accepted ? `version ${d.version}` : d.code) // 'DEVICE_ALREADY_EXISTS' the second time
 */
export type WriteDecision = AcceptedDecision | RejectedDecision;

/**
 * Options of a back-end write (tags, desired, both).
 *
 * @example
 * await client.replaceDesired('dev1', { mode: 'eco' }, { ifVersion: 4, timeoutMs: 2_000 })
 */
export interface WriteOptions {
  /** Apply only if the twin's etag is this one (`*`: any existing twin). Makes the write a command. */
  readonly ifMatch?: string | undefined;
  /** Apply only if the section's `$version` is this one. Makes the write a command. */
  readonly ifVersion?: number | undefined;
  /**
   * Wait for the projector's verdict even without a condition. Gotcha: the records of an
   * unconditional request are applied one by one, so a waited pair reports a rejection of either
   * record even when the other one was applied.
   */
  readonly wait?: boolean | undefined;
  /** Override the client's `decisionTimeoutMs` for this call. */
  readonly timeoutMs?: number | undefined;
  /**
   * The logical write's idempotency key (printable ASCII, 1–128 characters): the projector applies
   * a command whose key it accepted before only once, and answers a retry as accepted with
   * `duplicateOf` (docs/idempotency.md). Makes the write a command. Every command gets one: this
   * one, or by default its correlation id, which a `DECISION_TIMEOUT` reports in
   * `details.idempotencyKey` so that the caller can retry safely.
   */
  readonly idempotencyKey?: string | undefined;
  /**
   * How many times a command is sent again, the same records with the same ids and key, when its
   * decision does not come within `timeoutMs` (default 0). A retry is never applied twice.
   */
  readonly retries?: number | undefined;
}

/**
 * Options that make a back-end write resolve with a {@link WriteDecision}: a condition, a key, or `wait`.
 *
 * @example
 * const d: WriteDecision = await client.mergeTags('dev1', { a: 1 }, { wait: true })
 */
export type DecidedWriteOptions = WriteOptions &
  (
    | { readonly ifMatch: string }
    | { readonly ifVersion: number }
    | { readonly idempotencyKey: string }
    | { readonly wait: true }
  );

/**
 * Options of a write that resolves when appended (no condition, no `wait`).
 *
 * @example
 * const r: WriteReceipt = await client.mergeTags('dev1', { a: 1 }, {})
 */
export interface PlainWriteOptions {
  readonly ifMatch?: undefined;
  readonly ifVersion?: undefined;
  readonly idempotencyKey?: undefined;
  readonly wait?: false | undefined;
}

/**
 * Options of a device-side or lifecycle write (no conditions: only the back end sends commands).
 *
 * @example
 * await client.mergeReported('dev1', { temp: 21 }, { wait: true, timeoutMs: 1_000 })
 */
export interface WaitOptions {
  readonly wait?: boolean | undefined;
  readonly timeoutMs?: number | undefined;
  /** The events' `actor` for this call instead of the client's (a gateway writing for many devices). */
  readonly actor?: string | undefined;
}

/**
 * A tags or desired write: merge or replace of one section. Resolves with a {@link WriteReceipt},
 * or with a {@link WriteDecision} given {@link DecidedWriteOptions}.
 *
 * @example
 * await client.mergeDesired('dev1', { fw: '1.2', old: null }) // RFC 7396: null deletes
 */
export interface SectionWrite {
  (deviceId: string, patch: Patch, options: DecidedWriteOptions): Promise<WriteDecision>;
  (deviceId: string, patch: Patch, options?: PlainWriteOptions): Promise<WriteReceipt>;
  (deviceId: string, patch: Patch, options?: WriteOptions): Promise<WriteReceipt | WriteDecision>;
}

/**
 * A reported write, as the device would send it (to `twin.device`).
 *
 * @example
 * await client.mergeReported('dev1', { fw: { value: '1.2', ac: 200, av: 4 } }) // a Plug and Play ack
 */
export interface ReportedWrite {
  (deviceId: string, patch: Patch, options: WaitOptions & { readonly wait: true }): Promise<WriteDecision>;
  (
    deviceId: string,
    patch: Patch,
    options?: WaitOptions & { readonly wait?: false | undefined },
  ): Promise<WriteReceipt>;
  (deviceId: string, patch: Patch, options?: WaitOptions): Promise<WriteReceipt | WriteDecision>;
}

/**
 * A lifecycle write (create, delete).
 *
 * @example
 * await client.deleteDevice('dev1', { wait: true })
 */
export interface LifecycleWrite {
  (deviceId: string, options: WaitOptions & { readonly wait: true }): Promise<WriteDecision>;
  (deviceId: string, options?: WaitOptions & { readonly wait?: false | undefined }): Promise<WriteReceipt>;
  (deviceId: string, options?: WaitOptions): Promise<WriteReceipt | WriteDecision>;
}

/**
 * The back-end sections of one request (IoT Hub's `PATCH`/`PUT /twins/{id}` body).
 *
 * @example
 * const patch: TwinPatch = { tags: { site: 'b' }, desired: { fw: '1.2' } }
 */
export interface TwinPatch {
  readonly tags?: Patch;
  readonly desired?: Patch;
}

/**
 * A request touching tags and desired: one record per section, sharing one corr, appended in one
 * call; with a condition the projector decides them as one unit (both applied or neither).
 *
 * @example
 * const d = await client.patchTwin('dev1', { tags: { site: 'b' }, desired: { fw: '1.2' } }, { ifMatch: twin.etag })
 */
export interface TwinWrite {
  (deviceId: string, patch: TwinPatch, options: DecidedWriteOptions): Promise<WriteDecision>;
  (deviceId: string, patch: TwinPatch, options?: PlainWriteOptions): Promise<readonly WriteReceipt[]>;
  (deviceId: string, patch: TwinPatch, options?: WriteOptions): Promise<readonly WriteReceipt[] | WriteDecision>;
}

/**
 * Options of {@link TwinClient.update}.
 *
 * @example
 * await client.update('dev1', 'desired', (d) => { d['fw'] = '1.3' }, { ifUnchanged: true })
 */
export interface UpdateOptions extends WriteOptions {
  /** The section as the caller last saw it (without `$`-keys); default: fetched with `getTwin`. */
  readonly base?: JsonObject | undefined;
  /**
   * Make the write conditional on the etag of the twin fetched for the base (optimistic
   * concurrency: retry on `PRECONDITION_FAILED`). Only without `base`.
   */
  readonly ifUnchanged?: boolean | undefined;
}

/**
 * A recipe: mutate the draft (immer), or return a new section. `delete draft.k` and
 * `draft.k = undefined` both delete `k`.
 *
 * @example
 * const recipe: UpdateRecipe = (draft) => { delete draft['legacy']; draft['fw'] = '1.3' }
 */
export type UpdateRecipe = (draft: JsonObject) => void | JsonObject;

/**
 * `update`: immer over the current section, written as an RFC 7396 merge patch.
 *
 * @example
 * await client.update('dev1', 'tags', (t) => { t['site'] = 'b' }, { base: { site: 'a' } })
 */
export interface UpdateWrite {
  (
    deviceId: string,
    section: Section,
    recipe: UpdateRecipe,
    options: UpdateOptions &
      (
        | { readonly ifMatch: string }
        | { readonly ifVersion: number }
        | { readonly wait: true }
        | { readonly ifUnchanged: true }
      ),
  ): Promise<WriteDecision | undefined>;
  (
    deviceId: string,
    section: Section,
    recipe: UpdateRecipe,
    options?: UpdateOptions & PlainWriteOptions & { readonly ifUnchanged?: false | undefined },
  ): Promise<WriteReceipt | undefined>;
  (
    deviceId: string,
    section: Section,
    recipe: UpdateRecipe,
    options?: UpdateOptions,
  ): Promise<WriteReceipt | WriteDecision | undefined>;
}

/**
 * The client (see {@link createTwinClient}).
 *
 * @example
 * const client: TwinClient = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'app' })
 */
export interface TwinClient {
  /** This client's writer id (the first half of its event ids). */
  readonly writerId: string;
  /** Create a device's twin (`twin.backend`); refused with `DEVICE_ALREADY_EXISTS` if it exists. */
  readonly createDevice: LifecycleWrite;
  /** Delete a device's twin (`twin.backend`). */
  readonly deleteDevice: LifecycleWrite;
  readonly mergeTags: SectionWrite;
  readonly replaceTags: SectionWrite;
  readonly mergeDesired: SectionWrite;
  readonly replaceDesired: SectionWrite;
  /** Reported properties, as the device would send them (`twin.device`). */
  readonly mergeReported: ReportedWrite;
  readonly replaceReported: ReportedWrite;
  /** Merge tags and desired in one request (two records, one corr, decided as one unit). */
  readonly patchTwin: TwinWrite;
  /** Replace the given sections (tags and/or desired) in one request. */
  readonly replaceTwin: TwinWrite;
  /**
   * Change a section with an immer recipe: the difference between the section before and after
   * (core `diffMergePatch`) is written as a merge patch. Resolves `undefined`, appending nothing,
   * when the recipe changes nothing.
   */
  readonly update: UpdateWrite;
  /**
   * The twin as `GET /twins/{id}` returns it, rendered from the device's latest snapshot
   * (`renderTwin(fromStateDoc(state))`).
   *
   * Cost: it reads the device's whole `twin.snapshots` partition from offset 0 and keeps the last
   * record for the key — O(records in the partition), bounded on Kafka and after the embedded
   * log's `compact()` by the number of devices in the partition, not by their history. Fine for
   * tools and tests; a service answering many reads should use the query view instead.
   * Read-your-writes: a read right after an unconditional write may not show it yet (the projector
   * is asynchronous); pass `wait: true` to the write to be sure.
   *
   * @example
   * const twin = await client.getTwin('dev1')
   * twin.properties.desired.$version
   * @throws {TwinlogError} `DEVICE_NOT_FOUND` when there is no snapshot or the twin is deleted.
   */
  getTwin(deviceId: string): Promise<TwinDocument>;
  /** What each applied event changed (`twin.changes`). */
  changes(options?: FeedOptions): TwinFeed<ChangeRecord>;
  /** Desired-versus-reported deltas, when they change (`twin.deltas`, written by the reconciler). */
  deltas(options?: FeedOptions): TwinFeed<DeltaRecord>;
  /** Snapshots as the projector commits them (`twin.snapshots`; checkpoints skipped). */
  snapshots(options?: FeedOptions): TwinFeed<SnapshotRecord>;
  /** Refused records and commands (`twin.rejections`). */
  rejections(options?: FeedOptions): TwinFeed<RejectionRecord>;
  /** Records that could not be decoded (`twin.dead-letter`). */
  deadLetters(options?: FeedOptions): TwinFeed<DeadLetterRecord>;
  /** Stop waiting for decisions (pending ones fail with `DECISION_TIMEOUT`). Does not close the log. */
  close(): Promise<void>;
}

/**
 * A fresh writer incarnation id, `client-<8 hex>` (reads randomness, hence `Unsafe`).
 *
 * @example
 * createTwinClient({ log, physicalNow: Date.now, actor: 'app', writerId: randomWriterIdUnsafe() })
 */
export function randomWriterIdUnsafe(prefix = 'client'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * A section of a twin document as plain JSON, without its `$metadata` and `$version`: the base an
 * {@link TwinClient.update} recipe edits.
 *
 * @example
 * const twin = await client.getTwin('dev1')
 * sectionOf(twin, 'desired') // { fw: '1.2' }
 */
export function sectionOf(twin: TwinDocument, section: Section): JsonObject {
  const node: JsonObject = section === 'tags' ? twin.tags : twin.properties[section];
  const out: JsonObject = {};
  for (const k of Object.keys(node)) if (!k.startsWith('$')) out[k] = node[k]!;
  return out;
}

/**
 * Create a twinlog client over a log.
 *
 * Writes resolve when appended, or — for commands (`ifMatch`, `ifVersion`) and `wait: true` —
 * with the projector's decision, which needs a projector running on the same log.
 *
 * Gotchas: validation failures throw before anything is appended; a decision that does not come
 * within `decisionTimeoutMs` throws `DECISION_TIMEOUT` although the command may still be decided
 * later (read the feeds to find out). `getTwin` reads the device's whole `twin.snapshots`
 * partition (see {@link TwinClient.getTwin}).
 *
 * @example
 * const client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'fleet-app' })
 * await client.createDevice('dev1', { wait: true })
 * await client.mergeDesired('dev1', { fw: '1.2' })
 * const twin = await client.getTwin('dev1')
 * const d = await client.mergeTags('dev1', { site: 'b' }, { ifMatch: twin.etag })
 * if (!d.accepted) console.log(d.code) // 'PRECONDITION_FAILED' when someone wrote in between
 * for await (const change of client.changes({ deviceId: 'dev1' })) { console.log(change.diff); break }
 * @throws {TwinlogError} from writes: the validation codes (`KEY_INVALID`, `DEVICE_ID_INVALID` …),
 *   `SECTION_FORBIDDEN` for a condition on reported, `DECISION_TIMEOUT`; from `getTwin`:
 *   `DEVICE_NOT_FOUND`.
 */
export function createTwinClient({
  log,
  physicalNow,
  actor,
  writerId = randomWriterIdUnsafe(),
  firstSeq = 0,
  decisionTimeoutMs = 10_000,
  pollIntervalMs = 25,
  limits,
}: TwinClientOptions): TwinClient {
  const clock = createHybridClock({ physicalNow });
  let nextSeq = firstSeq;
  const observe = (wall: number, counter: number): void => {
    const h = { wall, counter };
    if (isValidHlc(h)) clock.recv(h); // unbounded skew: never throws
  };
  const watcher = new DecisionWatcher(log, pollIntervalMs, (c) => observe(c.wall, c.counter));
  const counts = new Map<string, Promise<number>>();
  const partitionCount = (topic: string): Promise<number> => {
    let c = counts.get(topic);
    if (c === undefined) {
      c = log.partitionCount(topic);
      c.catch(() => counts.delete(topic));
      counts.set(topic, c);
    }
    return c;
  };

  interface Draft {
    readonly section: EventKind;
    readonly op: 'merge' | 'replace';
    readonly patch: Patch;
  }

  /** Build, validate and encode the records of one request; consumes sequence numbers only on success. */
  const build = (
    deviceId: string,
    drafts: readonly Draft[],
    condition: Condition | undefined,
    corr: boolean,
    by: string,
  ): TwinEvent[] => {
    const requestId = `${writerId}/${nextSeq}`;
    const corrId = corr ? requestId : undefined;
    // every command carries an idempotency key: the caller's, or its correlation id (docs/idempotency.md)
    const cond = condition === undefined ? undefined : { ...condition, key: condition.key ?? requestId };
    const events = drafts.map((d, i): TwinEvent => ({
      v: ENVELOPE_VERSION,
      id: { writer: writerId, seq: nextSeq + i },
      deviceId,
      section: d.section,
      op: d.op,
      patch: d.patch,
      stamp: clock.now(),
      ...(cond === undefined ? {} : { cond }),
      actor: by,
      ...(corrId === undefined ? {} : { corr: corrId }),
    }));
    for (const e of events) {
      const r = validateEvent(e, limits === undefined ? {} : { limits });
      if (!r.ok) throw r.error;
    }
    nextSeq += events.length;
    return events;
  };

  const write = async (
    topic: string,
    deviceId: string,
    drafts: readonly Draft[],
    options: WriteOptions & { readonly actor?: string | undefined },
  ): Promise<WriteReceipt[] | WriteDecision> => {
    const {
      ifMatch,
      ifVersion,
      idempotencyKey,
      retries = 0,
      wait = false,
      timeoutMs = decisionTimeoutMs,
      actor: by = actor,
    } = options;
    if (idempotencyKey !== undefined && !isIdempotencyKey(idempotencyKey)) {
      throw new TwinlogError('EVENT_INVALID', 'invalid idempotency key: printable ASCII, 1 to 128 characters', {
        details: { idempotencyKey },
      });
    }
    if (!Number.isSafeInteger(retries) || retries < 0)
      throw new TypeError(`retries must be a non-negative integer, not ${retries}`);
    const cond: Condition | undefined =
      ifMatch === undefined && ifVersion === undefined && idempotencyKey === undefined
        ? undefined
        : {
            ...(ifMatch === undefined ? {} : { ifMatch }),
            ...(ifVersion === undefined ? {} : { ifVersion }),
            ...(idempotencyKey === undefined ? {} : { key: idempotencyKey }),
          };
    if (
      cond !== undefined &&
      (topic !== TOPICS.backend || drafts.some((d) => d.section !== 'tags' && d.section !== 'desired'))
    ) {
      throw new TwinlogError('SECTION_FORBIDDEN', 'conditional and keyed writes apply to tags and desired only');
    }
    const decided = cond !== undefined || wait;
    const events = build(deviceId, drafts, cond, decided || drafts.length > 1, by);
    const records = events.map((e) => ({ key: deviceId, value: encodeEvent(e) }));
    const corr = events[0]!.corr;

    if (!decided || corr === undefined) {
      const landed = await log.append(topic, records);
      return events.map((e, i) => receipt(e, topic, landed[i]!.partition, landed[i]!.offset));
    }

    const partition = partitionFor(deviceId, await partitionCount(TOPICS.changes));
    const ids = events.map((e) => e.id);
    const key = events[0]!.cond?.key;
    let snapshotsFrom = 0;
    let verdict: Verdict | undefined;
    // a command that times out is sent again as the same records (same ids, same key): the
    // projector answers a copy of an applied write DUPLICATE_WRITE, never applies it twice
    for (let attempt = 0; verdict === undefined; attempt++) {
      const registration = await watcher.register(partition, corr, events.length);
      try {
        if (cond !== undefined && attempt === 0)
          snapshotsFrom = (await log.endOffsets(TOPICS.snapshots))[partition] ?? 0;
        await log.append(topic, records);
      } catch (e) {
        registration.cancel();
        throw e;
      }
      verdict = await within(registration, timeoutMs);
      if (verdict === undefined && attempt >= (cond === undefined ? 0 : retries)) {
        const tried = attempt === 0 ? '' : ` (sent ${attempt + 1} times)`;
        throw new TwinlogError(
          'DECISION_TIMEOUT',
          `no decision on ${corr} within ${timeoutMs} ms${tried} (is a projector running?); the write is in the log and may still be applied: ` +
            (key === undefined
              ? `read the twin, or look for event ${ids.map((id) => `${id.writer}/${id.seq}`).join(', ')} in its history, before writing it again`
              : `retry it with idempotency key ${key}, which is never applied twice (docs/idempotency.md)`),
          { details: { corr, deviceId, ids, timeoutMs, ...(key === undefined ? {} : { idempotencyKey: key }) } },
        );
      }
    }
    if (!verdict.accepted) {
      const r = verdict.rejection;
      if (r.code === 'DUPLICATE_WRITE' && r.duplicateOf !== undefined) {
        return {
          accepted: true,
          corr,
          ids,
          duplicateOf: r.duplicateOf,
          version: r.version ?? 0,
          desiredVersion: r.desiredVersion ?? 0,
          reportedVersion: r.reportedVersion ?? 0,
          ...(typeof r.etag === 'string' ? { etag: r.etag } : {}),
          changes: [],
        };
      }
      return { accepted: false, corr, ids, code: r.code as TwinlogErrorCode, message: r.message, etag: r.etag ?? null };
    }
    const last = verdict.changes[verdict.changes.length - 1]!;
    const etag = cond === undefined ? undefined : await decidedEtag(deviceId, partition, snapshotsFrom, ids[0]!);
    return {
      accepted: true,
      corr,
      ids,
      version: last.version,
      desiredVersion: last.desiredVersion,
      reportedVersion: last.reportedVersion,
      ...(etag === undefined ? {} : { etag }),
      changes: verdict.changes,
    };
  };

  /** The registration's verdict, or undefined (and the registration cancelled) after `ms`. */
  const within = async (registration: Registration, ms: number): Promise<Verdict | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        registration.cancel();
        resolve(undefined);
      }, ms);
    });
    try {
      return await Promise.race([registration.verdict, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** The etag recorded with the decision on `id`, from the snapshots committed after `from`. */
  const decidedEtag = async (
    deviceId: string,
    partition: number,
    from: number,
    id: Dot,
  ): Promise<string | undefined> => {
    let etag: string | undefined;
    for await (const records of log.read(TOPICS.snapshots, partition, { from })) {
      for (const r of records) {
        if (r.key !== deviceId || r.value === null) continue;
        try {
          const snap = decodeOutputRecord(r.value, 'snapshot');
          const found = fromStateDoc(snap.state).decided.get(dotKey(id));
          if (found !== undefined && found.accepted) etag = found.etag;
        } catch {
          // best effort: the decision itself is already known
        }
      }
    }
    return etag;
  };

  const sectionWrite = (section: 'tags' | 'desired', op: 'merge' | 'replace'): SectionWrite =>
    ((deviceId: string, patch: Patch, options: WriteOptions = {}) =>
      write(TOPICS.backend, deviceId, [{ section, op, patch }], options).then(single)) as SectionWrite;
  const reportedWrite = (op: 'merge' | 'replace'): ReportedWrite =>
    ((deviceId: string, patch: Patch, { wait, timeoutMs, actor: by }: WaitOptions = {}) =>
      write(TOPICS.device, deviceId, [{ section: 'reported', op, patch }], { wait, timeoutMs, actor: by }).then(
        single,
      )) as ReportedWrite;
  const lifecycleWrite = (section: 'create' | 'delete'): LifecycleWrite =>
    ((deviceId: string, { wait, timeoutMs, actor: by }: WaitOptions = {}) =>
      write(TOPICS.backend, deviceId, [{ section, op: 'merge', patch: {} }], { wait, timeoutMs, actor: by }).then(
        single,
      )) as LifecycleWrite;
  const twinWrite = (op: 'merge' | 'replace'): TwinWrite =>
    (async (deviceId: string, patch: TwinPatch, options: WriteOptions = {}) => {
      const drafts: Draft[] = [];
      if (patch.tags !== undefined) drafts.push({ section: 'tags', op, patch: patch.tags });
      if (patch.desired !== undefined) drafts.push({ section: 'desired', op, patch: patch.desired });
      if (drafts.length === 0) throw new TwinlogError('PATCH_NOT_OBJECT', 'a twin patch needs tags or desired');
      return write(TOPICS.backend, deviceId, drafts, options);
    }) as TwinWrite;

  const getTwin = async (deviceId: string): Promise<TwinDocument> => {
    const partition = partitionFor(deviceId, await partitionCount(TOPICS.snapshots));
    const end = (await log.endOffsets(TOPICS.snapshots))[partition] ?? 0;
    let last: Uint8Array | null = null;
    for await (const records of log.read(TOPICS.snapshots, partition, { from: 0, to: end })) {
      for (const r of records) if (r.key === deviceId) last = r.value;
    }
    const snap = last === null ? undefined : decodeOutputRecord(last, 'snapshot');
    if (snap === undefined || !snap.exists) {
      throw new TwinlogError('DEVICE_NOT_FOUND', `device ${deviceId} does not exist`, { details: { deviceId } });
    }
    const state = fromStateDoc(snap.state);
    if (state.maxStamp.wall >= 0) observe(state.maxStamp.wall, state.maxStamp.counter);
    return renderTwin(state);
  };

  const update = (async (deviceId: string, section: Section, recipe: UpdateRecipe, options: UpdateOptions = {}) => {
    const { base, ifUnchanged = false, ...writeOptions } = options;
    if (base !== undefined && ifUnchanged)
      throw new TypeError('update: ifUnchanged needs the fetched twin; with base, pass ifMatch');
    let before: JsonObject;
    let etag: string | undefined;
    if (base === undefined) {
      const twin = await getTwin(deviceId);
      before = sectionOf(twin, section);
      etag = twin.etag;
    } else {
      before = base;
    }
    const after = produce(before, recipe as (draft: JsonObject) => JsonObject | undefined);
    const patch = diffMergePatch(before, withoutUndefined(after));
    if (Object.keys(patch).length === 0) return undefined;
    const topic = section === 'reported' ? TOPICS.device : TOPICS.backend;
    const opts: WriteOptions = ifUnchanged ? { ...writeOptions, ifMatch: etag } : writeOptions;
    return write(topic, deviceId, [{ section, op: 'merge', patch }], opts).then(single);
  }) as UpdateWrite;

  const feed =
    <K extends 'change' | 'delta' | 'snapshot' | 'rejection' | 'dead-letter'>(topic: string, kind: K) =>
    (options: FeedOptions = {}) =>
      tailTopic(log, topic, kind, { pollIntervalMs, ...options });

  return {
    writerId,
    createDevice: lifecycleWrite('create'),
    deleteDevice: lifecycleWrite('delete'),
    mergeTags: sectionWrite('tags', 'merge'),
    replaceTags: sectionWrite('tags', 'replace'),
    mergeDesired: sectionWrite('desired', 'merge'),
    replaceDesired: sectionWrite('desired', 'replace'),
    mergeReported: reportedWrite('merge'),
    replaceReported: reportedWrite('replace'),
    patchTwin: twinWrite('merge'),
    replaceTwin: twinWrite('replace'),
    update,
    getTwin,
    changes: feed(TOPICS.changes, 'change'),
    deltas: feed(TOPICS.deltas, 'delta'),
    snapshots: feed(TOPICS.snapshots, 'snapshot'),
    rejections: feed(TOPICS.rejections, 'rejection'),
    deadLetters: feed(TOPICS.deadLetter, 'dead-letter'),
    async close() {
      watcher.close(
        new TwinlogError('DECISION_TIMEOUT', 'the client was closed before the decision arrived', {
          details: { closed: true },
        }),
      );
    },
  };
}

function receipt(e: TwinEvent, topic: string, partition: number, offset: number): WriteReceipt {
  return { id: e.id, stamp: e.stamp, topic, partition, offset, ...(e.corr === undefined ? {} : { corr: e.corr }) };
}

/** One record's receipt for single-record writes; decisions pass through. */
function single(r: WriteReceipt[] | WriteDecision): WriteReceipt | WriteDecision {
  return Array.isArray(r) ? r[0]! : r;
}

/** JSON semantics for immer results: `undefined` members are absent (so `draft.x = undefined` deletes). */
function withoutUndefined(value: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(value)) {
    const v = value[k];
    if (v === undefined) continue;
    out[k] = isPlainObject(v) ? withoutUndefined(v) : v;
  }
  return out;
}
