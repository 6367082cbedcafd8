/**
 * The one-shot commands (replay, audit, tail, query, twin, device): each opens the store, wraps one
 * or two library calls, prints, and closes the store.
 */
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { createTwinClient, type TwinClient, type WriteDecision } from '@twinlog/client';
import { decodeOutputRecord, type OutputRecord } from '@twinlog/codec';
import {
  isPlainObject,
  isTwinlogError,
  isValidDeviceId,
  partitionFor,
  renderTwin,
  twinExists,
  TwinlogError,
  type EventKind,
  type JsonObject,
  type Log,
  type Patch,
  type TwinDocument,
  type TwinState,
} from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import {
  auditLines,
  auditTrail,
  CHECKPOINT_KEY,
  ensureTwinTopics,
  listTwins,
  replay,
  TOPICS,
  type HistoryEntry,
} from '@twinlog/projector';
import { evaluate, parseQuery } from '@twinlog/query';
import { CliError } from './CliError.ts';
import { createProgress } from './createProgress.ts';
import {
  formatChange,
  formatDeadLetter,
  formatDelta,
  formatHistoryEntry,
  formatRejection,
  toJsonLine,
} from './formatRecords.ts';
import { embeddedPath, openStore, registryFileOf, type Store } from './openStore.ts';
import type { CliConfig } from './resolveConfig.ts';
import { openLineSink, type LineSink } from './lineSink.ts';
import { auditLineText, CSV_COLUMNS, compileCondition, type AuditFormat, type AuditLineOptions } from './auditLine.ts';
import { watchTopic } from './watchTopic.ts';

/** Where commands print: stdout for results, stderr for progress and diagnostics. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly stderrIsTTY: boolean;
}

export async function withStore<T>(config: CliConfig, run: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config, { kafkaLogSink: () => {} });
  try {
    return await run(store);
  } finally {
    await store.log.close();
  }
}

/** `--until`, `--since`: an ISO-8601 time (or anything `Date.parse` reads), as ms. */
export function parseTime(flag: string, text: string): number {
  const ms = /^[0-9]{4}-/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms))
    throw new CliError(`${flag} must be an ISO-8601 time such as 2026-11-28T12:00:00Z, got '${text}'`);
  return ms;
}

/** `--until` of replay: a time, an offset for every input partition, or offsets for some partitions. */
export type ReplayUntil = { time: number } | { offset: number } | { offsets: ReadonlyMap<number, number> };

/**
 * `--until` of replay: an ISO-8601 time; an offset (a non-negative integer: the last offset to include in every
 * input partition); or `partition:offset` pairs separated by commas (the last offset to include in each input
 * topic of that partition; partitions not named are read to their end).
 */
export function parseUntil(text: string): ReplayUntil {
  const offset = (digits: string): number => {
    const n = Number(digits);
    if (!Number.isSafeInteger(n)) throw new CliError(`--until: offset ${digits} is too large`);
    return n;
  };
  if (/^[0-9]+$/.test(text)) return { offset: offset(text) };
  if (/^[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*$/.test(text)) {
    const offsets = new Map<number, number>();
    for (const pair of text.split(',')) {
      const [p, o] = pair.split(':') as [string, string];
      if (offsets.has(Number(p))) throw new CliError(`--until names partition ${p} twice`);
      offsets.set(Number(p), offset(o));
    }
    return { offsets };
  }
  if (!/^[0-9]{4}-/.test(text) || !Number.isFinite(Date.parse(text))) {
    throw new CliError(
      `--until must be an ISO-8601 time (2026-11-28T12:00:00Z), an offset (a non-negative integer) or partition:offset pairs (0:1200,1:980), got '${text}'`,
    );
  }
  return { time: Date.parse(text) };
}

function describeUntil(until: ReplayUntil): string {
  if ('time' in until) return ` as of ${new Date(until.time).toISOString()}`;
  if ('offset' in until) return ` up to offset ${until.offset}`;
  return ` up to offsets ${[...until.offsets].map(([p, o]) => `${p}:${o}`).join(',')}`;
}

function untilJson(until: ReplayUntil | undefined): unknown {
  if (until === undefined) return null;
  if ('time' in until) return new Date(until.time).toISOString();
  if ('offset' in until) return { offset: until.offset };
  return { offsets: Object.fromEntries(until.offsets) };
}

export function parseCount(flag: string, text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    throw new CliError(`${flag} must be a positive integer, got '${text}'`);
  return Number(text);
}

export function parseJsonObject(what: string, text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CliError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(value))
    throw new CliError(`${what} must be a JSON object, got ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`);
  return value as JsonObject;
}

/** A log whose input topics end at `last + 1` in the partitions `lastOf` bounds (replay `--until <offset>`). */
function boundedLog(log: Log, lastOf: (partition: number) => number | undefined): Log {
  return new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === 'endOffsets') {
        return async (topic: string) => {
          const ends = await target.endOffsets(topic);
          if (topic !== TOPICS.backend && topic !== TOPICS.device) return ends;
          return ends.map((e, p) => {
            const last = lastOf(p);
            return last === undefined ? e : Math.min(e, last + 1);
          });
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const fmt = (n: number): string => n.toLocaleString('en-US');

// --- replay ----------------------------------------------------------------------------------------

export async function replayCommand(
  config: CliConfig,
  io: CliIo,
  opts: { until?: string; device?: string; into?: string; json?: boolean; twins?: string; workers?: string },
): Promise<number> {
  const until = opts.until === undefined ? undefined : parseUntil(opts.until);
  const asked =
    opts.workers === undefined ? undefined : opts.workers === '0' ? 0 : parseCount('--workers', opts.workers);
  // --into: an embedded log file (`*.db`), or a data folder (its `twinlog.db`, as `--data` names it)
  const intoPath =
    opts.into === undefined ? undefined : opts.into.endsWith('.db') ? resolve(opts.into) : embeddedPath(opts.into);
  if (intoPath !== undefined && config.kafka === undefined && intoPath === embeddedPath(config.data)) {
    throw new CliError(`--into must name another store than the one replayed (${intoPath})`);
  }
  return withStore(config, async (store) => {
    if (intoPath !== undefined) mkdirSync(dirname(intoPath), { recursive: true });
    const into = intoPath === undefined ? undefined : createEmbeddedLog({ path: intoPath });
    // the partitions are folded on every core unless asked otherwise (docs/write-path.md, "Replay")
    const workers = asked ?? availableParallelism();
    try {
      if (into !== undefined) await ensureTwinTopics(into, await store.log.partitionCount(TOPICS.backend));
      const log =
        until === undefined || 'time' in until
          ? store.log
          : boundedLog(store.log, 'offset' in until ? () => until.offset : (p) => until.offsets.get(p));
      const progress = createProgress({ write: io.err, isTTY: io.stderrIsTTY, label: 'replay' });
      const started = Date.now();
      let last = { read: 0, total: 0 };
      const result = await replay({
        log,
        ...(until !== undefined && 'time' in until ? { until: until.time } : {}),
        ...(opts.device === undefined ? {} : { deviceId: opts.device }),
        ...(into === undefined ? {} : { into }),
        ...(workers < 2 ? {} : { workers, ...(store.workerLog === undefined ? {} : { workerLog: store.workerLog }) }),
        // only --device and --twins print states; without them none cross back from the workers
        keepStates: opts.device !== undefined || opts.twins !== undefined,
        onProgress: (p) => {
          last = p;
          progress.update(p.read, p.total);
        },
      });
      progress.end(last.read, last.total);
      const seconds = (Date.now() - started) / 1000;
      const twin = opts.device === undefined ? undefined : result.states.get(opts.device);
      const rendered = twin === undefined ? undefined : renderTwin(twin);
      // --twins: the rebuilt twins as JSON lines; on standard output the summary moves to standard error
      const summaryOut = opts.twins === '-' ? io.err : io.out;
      if (opts.twins !== undefined) {
        const sink = openLineSink(opts.twins, io.out);
        try {
          for (const state of result.states.values())
            if (twinExists(state)) sink.line(JSON.stringify(renderTwin(state)));
        } finally {
          sink.close();
        }
      }
      if (opts.json === true) {
        summaryOut(
          `${toJsonLine({
            store: store.description,
            until: untilJson(until),
            counts: result.counts,
            partitions: result.partitions,
            into: intoPath ?? null,
            twins: opts.twins ?? null,
            seconds,
            ...(opts.device === undefined ? {} : { twin: rendered ?? null }),
          })}\n`,
        );
        return 0;
      }
      const c = result.counts;
      const lines = [
        `replayed ${store.description}${until === undefined ? '' : describeUntil(until)}${opts.device === undefined ? '' : ` for device ${opts.device}`} in ${seconds.toFixed(1)} s`,
        `records read ${fmt(c.records)}: applied ${fmt(c.applied)}, duplicates ${fmt(c.duplicates)}, skipped ${fmt(c.skipped)}, rejected ${fmt(c.rejected)}, dead-lettered ${fmt(c.deadLettered)}, commands ${fmt(c.commands)}, parked ${fmt(c.parked)}`,
        `devices ${fmt(c.devices)}`,
        ...result.partitions.map(
          (p) =>
            `partition ${p.partition}: ${TOPICS.backend} offsets ${p.backend.first ?? '-'}..${p.backend.last ?? '-'}, ${TOPICS.device} offsets ${p.device.first ?? '-'}..${p.device.last ?? '-'}`,
        ),
      ];
      if (intoPath !== undefined) lines.push(`snapshots written to embedded:${intoPath}`);
      if (opts.twins !== undefined && opts.twins !== '-') lines.push(`twins written to ${opts.twins} (JSON lines)`);
      if (opts.device !== undefined)
        lines.push(rendered === undefined ? `device ${opts.device}: no twin then` : JSON.stringify(rendered, null, 2));
      summaryOut(`${lines.join('\n')}\n`);
      return 0;
    } finally {
      await into?.close();
    }
  });
}

// --- audit -----------------------------------------------------------------------------------------

const SECTIONS = ['tags', 'desired', 'reported', 'create', 'delete'] as const;

/** The line factory's module, as a worker thread imports it (compiled, or from the sources through tsx). */
const AUDIT_LINE_MODULE = new URL(
  import.meta.url.endsWith('.ts') ? './auditLine.ts' : './auditLine.js',
  import.meta.url,
).href;

export interface AuditCommandOptions {
  section?: string;
  since?: string;
  until?: string;
  json?: boolean;
  format?: string;
  where?: string;
  all?: boolean;
  output?: string;
  workers?: string;
}

/**
 * `twinlog audit <deviceId>`: one twin's trail; `twinlog audit --all` or `--where <condition>`: the fleet's,
 * streamed (the condition is a query's WHERE clause, evaluated on the twin as it was right after each event).
 */
export async function auditCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string | undefined,
  opts: AuditCommandOptions,
): Promise<number> {
  if (opts.section !== undefined && !(SECTIONS as readonly string[]).includes(opts.section)) {
    throw new CliError(`--section must be one of ${SECTIONS.join(', ')}, got '${opts.section}'`);
  }
  const format = opts.format ?? (opts.json === true ? 'json' : 'text');
  if (format !== 'text' && format !== 'json' && format !== 'csv')
    throw new CliError(`--format must be text, json or csv, got '${format}'`);
  if (deviceId === undefined && opts.all !== true && opts.where === undefined) {
    throw new CliError("missing required argument 'deviceId' (or --all, or --where <condition>, for a fleet)");
  }
  if (deviceId !== undefined && opts.all === true)
    throw new CliError('--all audits every twin: give it without a device id');
  const since = opts.since === undefined ? undefined : parseTime('--since', opts.since);
  const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
  const keep = opts.where === undefined ? undefined : compileCondition(opts.where);
  const sections = opts.section === undefined ? undefined : [opts.section as EventKind];
  const asked =
    opts.workers === undefined ? undefined : opts.workers === '0' ? 0 : parseCount('--workers', opts.workers);
  return withStore(config, async (store) => {
    const sink = openLineSink(opts.output, io.out);
    try {
      if (deviceId === undefined) {
        await auditFleet(store, io, sink, { format, since, until, sections, where: opts.where, workers: asked });
        return 0;
      }
      let kept = 0;
      const text: HistoryEntry[] = [];
      if (format === 'csv') sink.line(CSV_COLUMNS.join(','));
      const line = auditLineText({ format });
      const result = await auditTrail({
        log: store.log,
        deviceId,
        ...(since === undefined ? {} : { since }),
        ...(until === undefined ? {} : { until }),
        ...(sections === undefined ? {} : { sections }),
        ...(keep === undefined ? {} : { where: (state: TwinState) => keep(renderTwin(state)) }),
        onEntry: (e, state) => {
          kept++;
          if (format === 'text') text.push(e);
          else sink.line(line(e, state)!);
        },
      });
      if (!result.states.has(deviceId))
        throw new TwinlogError('DEVICE_NOT_FOUND', `no events for device ${deviceId} in ${store.description}`);
      if (format === 'text') {
        sink.line(`audit of ${deviceId} (${kept} of ${result.counts.applied} events)`);
        for (const e of text) sink.line(formatHistoryEntry(e));
      }
    } finally {
      sink.close();
    }
    return 0;
  });
}

/**
 * A fleet's audit, streamed: the partitions are audited on every core unless asked otherwise, and
 * the lines come out in the same order either way (docs/write-path.md, "Replay").
 */
async function auditFleet(
  store: Store,
  io: CliIo,
  sink: LineSink,
  {
    format,
    since,
    until,
    sections,
    where,
    workers: asked,
  }: {
    format: AuditFormat;
    since: number | undefined;
    until: number | undefined;
    sections: EventKind[] | undefined;
    where: string | undefined;
    workers: number | undefined;
  },
): Promise<void> {
  const workers = asked ?? availableParallelism();
  if (format === 'csv') sink.line(CSV_COLUMNS.join(','));
  const progress = createProgress({ write: io.err, isTTY: io.stderrIsTTY, label: 'audit' });
  let last = { read: 0, total: 0 };
  const options: AuditLineOptions = { format, ...(where === undefined ? {} : { where }) };
  const result = await auditLines({
    log: store.log,
    lines: { module: AUDIT_LINE_MODULE, export: 'fleetAuditLine', options },
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(sections === undefined ? {} : { sections }),
    ...(workers < 2 ? {} : { workers, ...(store.workerLog === undefined ? {} : { workerLog: store.workerLog }) }),
    onChunk: (chunk) => sink.bytes(chunk),
    onProgress: (p) => {
      last = p;
      progress.update(p.read, p.total);
    },
  });
  progress.end(last.read, last.total);
  io.err(
    `audit: ${fmt(result.lines)} events kept of ${fmt(result.counts.applied)} applied, ${fmt(result.counts.devices)} twins\n`,
  );
}

// --- tail ------------------------------------------------------------------------------------------

export const FEEDS = {
  changes: { topic: TOPICS.changes, kind: 'change' },
  deltas: { topic: TOPICS.deltas, kind: 'delta' },
  rejections: { topic: TOPICS.rejections, kind: 'rejection' },
  'dead-letter': { topic: TOPICS.deadLetter, kind: 'dead-letter' },
} as const;
export type FeedName = keyof typeof FEEDS;

export async function tailCommand(
  config: CliConfig,
  io: CliIo,
  feed: string,
  opts: {
    device?: string;
    fromBeginning?: boolean;
    limit?: string;
    json?: boolean;
    follow?: boolean;
    untilConverged?: boolean;
  },
  signal: AbortSignal,
): Promise<number> {
  if (!Object.hasOwn(FEEDS, feed))
    throw new CliError(`unknown feed '${feed}': use one of ${Object.keys(FEEDS).join(', ')}`);
  const { topic, kind } = FEEDS[feed as FeedName];
  const limit = opts.limit === undefined ? Infinity : parseCount('--limit', opts.limit);
  if (opts.untilConverged === true && feed !== 'deltas')
    throw new CliError('--until-converged applies to the deltas feed only');
  return withStore(config, async (store) => {
    const count = await store.log.partitionCount(topic);
    let printed = 0;
    let over = false;
    let resolveFinished: () => void = () => {};
    const finished = new Promise<void>((r) => (resolveFinished = r));
    const done = (): void => {
      over = true;
      resolveFinished();
    };
    let failure: unknown;
    const watch = watchTopic(store.log, topic, {
      from: opts.fromBeginning === true ? 'earliest' : 'latest',
      pollIntervalMs: store.kind === 'kafka' ? 500 : 100,
      ...(opts.device === undefined ? {} : { partitions: [partitionFor(opts.device, count)] }),
      onIdle: () => {
        if (opts.follow === false) done();
      },
      onError: (e) => {
        failure = e;
        done();
      },
      onRecord: (r) => {
        if (over || r.value === null || r.key === CHECKPOINT_KEY) return;
        if (opts.device !== undefined && r.key !== opts.device) return;
        let record: OutputRecord;
        try {
          record = decodeOutputRecord(r.value, kind);
        } catch (e) {
          if (!isTwinlogError(e)) throw e;
          io.err(`skipped ${topic}/${r.partition}@${r.offset}: ${e.code}: ${e.message}\n`);
          return;
        }
        if (opts.json === true)
          io.out(
            `${toJsonLine({ ...record, appendTime: new Date(r.timestamp).toISOString(), offset: r.offset, partition: r.partition })}\n`,
          );
        else if (record.kind === 'change') io.out(`${formatChange(record)}\n`);
        else if (record.kind === 'delta') io.out(`${formatDelta(record, r.timestamp)}\n`);
        else if (record.kind === 'rejection') io.out(`${formatRejection(record, r.timestamp)}\n`);
        else if (record.kind === 'dead-letter') io.out(`${formatDeadLetter(record, r.timestamp)}\n`);
        printed++;
        if (printed >= limit) done();
        if (
          opts.untilConverged === true &&
          record.kind === 'delta' &&
          record.delta.converged &&
          record.delta.entries.length > 0
        )
          done();
      },
    });
    const onAbort = (): void => done();
    signal.addEventListener('abort', onAbort);
    await finished;
    signal.removeEventListener('abort', onAbort);
    await watch.stop();
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the watch caught
    if (failure !== undefined) throw failure;
    return 0;
  });
}

// --- query -----------------------------------------------------------------------------------------

export async function queryCommand(
  config: CliConfig,
  io: CliIo,
  text: string,
  opts: { pretty?: boolean },
): Promise<number> {
  const query = parseQuery(text);
  return withStore(config, async (store) => {
    // FROM devices: device twins, FROM devices.modules: module twins (docs/iot-hub.md, "Module identities and module twins")
    const twins = (await listTwins(store.log)).filter(
      (t) => (query.from === 'devices.modules') === (t.moduleId !== undefined),
    );
    const rows = evaluate(query, twins);
    if (opts.pretty === true) io.out(`${JSON.stringify(rows, null, 2)}\n`);
    else for (const row of rows) io.out(`${JSON.stringify(row)}\n`);
    io.err(`${rows.length} row${rows.length === 1 ? '' : 's'}\n`);
    return 0;
  });
}

// --- twin and device -------------------------------------------------------------------------------

export interface WriteFlags {
  readonly wait?: boolean;
  readonly timeout?: string;
}

async function withClient<T>(
  config: CliConfig,
  actor: string,
  flags: WriteFlags,
  run: (client: TwinClient, store: Store) => Promise<T>,
): Promise<T> {
  const timeoutMs = flags.timeout === undefined ? 15_000 : parseCount('--timeout', flags.timeout);
  return withStore(config, async (store) => {
    const client = createTwinClient({
      log: store.log,
      physicalNow: () => Date.now(),
      actor,
      decisionTimeoutMs: timeoutMs,
    });
    try {
      return await run(client, store);
    } catch (e) {
      if (isTwinlogError(e, 'DECISION_TIMEOUT')) {
        const key = e.details?.['idempotencyKey'];
        throw new TwinlogError(
          'DECISION_TIMEOUT',
          `${e.message}. The write is in the log (${store.description}) and may still be applied when a projector decides it: ` +
            'is `twinlog serve` running? ' +
            (typeof key === 'string'
              ? `Retry safely with \`--idempotency-key ${key}\` (a write with the same key is applied once), or check with \`twinlog twin get <device>\`.`
              : 'Check with `twinlog audit <device>` or `twinlog twin get <device>` before writing it again.'),
          ...(typeof key === 'string' ? [{ details: { idempotencyKey: key } }] : []),
        );
      }
      throw e;
    } finally {
      await client.close();
    }
  });
}

/** A refused decision is an error with its code. */
function decided(d: WriteDecision): void {
  if (!d.accepted) throw new TwinlogError(d.code, d.message, { details: { etag: d.etag } });
}

function printTwin(io: CliIo, twin: TwinDocument): void {
  io.out(`${JSON.stringify(twin, null, 2)}\n`);
}

export async function twinGetCommand(config: CliConfig, io: CliIo, deviceId: string): Promise<number> {
  return withStore(config, async (store) => {
    const client = createTwinClient({ log: store.log, physicalNow: () => Date.now(), actor: 'twinlog-cli' });
    try {
      printTwin(io, await client.getTwin(deviceId));
    } finally {
      await client.close();
    }
    return 0;
  });
}

/** `{"tags": {...}, "properties": {"desired": {...}}}` (IoT Hub's twin patch body) → sections. */
function twinPatchOf(body: JsonObject): { tags?: Patch; desired?: Patch } {
  const out: { tags?: Patch; desired?: Patch } = {};
  for (const key of Object.keys(body))
    if (key !== 'tags' && key !== 'properties')
      throw new CliError(`the twin patch may hold tags and properties.desired only, not '${key}'`);
  const props = body['properties'];
  if (props !== undefined) {
    if (!isPlainObject(props)) throw new CliError('properties must be an object');
    for (const key of Object.keys(props)) {
      if (key !== 'desired')
        throw new CliError(
          `properties.${key} cannot be written by the back end (a device reports with \`twinlog twin report\`)`,
        );
    }
    const desired = props['desired'];
    if (desired !== undefined) {
      if (!isPlainObject(desired)) throw new CliError('properties.desired must be an object');
      out.desired = desired;
    }
  }
  const tags = body['tags'];
  if (tags !== undefined) {
    if (!isPlainObject(tags)) throw new CliError('tags must be an object');
    out.tags = tags;
  }
  if (out.tags === undefined && out.desired === undefined)
    throw new CliError('the twin patch is empty: give {"tags": {...}} and/or {"properties": {"desired": {...}}}');
  return out;
}

export async function twinWriteCommand(
  config: CliConfig,
  io: CliIo,
  mode: 'patch' | 'replace',
  deviceId: string,
  json: string,
  opts: WriteFlags & { ifMatch?: string; idempotencyKey?: string; retries?: string },
): Promise<number> {
  const body = parseJsonObject('the twin patch', json);
  // replace (IoT Hub's PUT): tags and desired are replaced as a whole; a section left out becomes empty.
  const patch = mode === 'patch' ? twinPatchOf(body) : { tags: {}, desired: {}, ...twinPatchOf({ tags: {}, ...body }) };
  return withClient(config, 'twinlog-cli', opts, async (client) => {
    const write = mode === 'patch' ? client.patchTwin : client.replaceTwin;
    if (opts.wait === false) {
      if (opts.ifMatch !== undefined || opts.idempotencyKey !== undefined || opts.retries !== undefined) {
        throw new CliError('--if-match, --idempotency-key and --retries need the decision: drop --no-wait');
      }
      const receipts = await write(deviceId, patch);
      io.out(
        `appended ${receipts.map((r) => `${r.topic}/${r.partition}@${r.offset}`).join(', ')} (not waiting for the projector)\n`,
      );
      return 0;
    }
    const d = await write(deviceId, patch, {
      ifMatch: opts.ifMatch ?? '*',
      ...(opts.idempotencyKey === undefined ? {} : { idempotencyKey: opts.idempotencyKey }),
      ...(opts.retries === undefined
        ? {}
        : { retries: opts.retries === '0' ? 0 : parseCount('--retries', opts.retries) }),
    });
    decided(d);
    if (d.accepted && d.duplicateOf !== undefined) {
      io.err(`already applied as event ${d.duplicateOf.writer}/${d.duplicateOf.seq}: not applied again\n`);
    }
    printTwin(io, await client.getTwin(deviceId));
    return 0;
  });
}

export async function twinReportCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  json: string,
  opts: WriteFlags & { replace?: boolean },
): Promise<number> {
  const patch = parseJsonObject('the reported patch', json) as Patch;
  return withClient(config, deviceId, opts, async (client) => {
    const write = opts.replace === true ? client.replaceReported : client.mergeReported;
    if (opts.wait === false) {
      const r = await write(deviceId, patch);
      io.out(`appended ${r.topic}/${r.partition}@${r.offset} (not waiting for the projector)\n`);
      return 0;
    }
    decided(await write(deviceId, patch, { wait: true }));
    printTwin(io, await client.getTwin(deviceId));
    return 0;
  });
}

/** The registry's key store (loaded on demand: the gateway package is heavy for other commands). */
async function deviceKeyStore(config: CliConfig): Promise<import('@twinlog/gateway').DeviceKeyStore> {
  const { createDeviceKeyStore, ensurePrivateDir } = await import('@twinlog/gateway');
  ensurePrivateDir(config.data);
  return createDeviceKeyStore(registryFileOf(config));
}

/**
 * Creates the twin and, like IoT Hub's registry, the device's symmetric keys (in the registry file
 * `serve` reads, so the device can connect over MQTT at once); prints its connection string.
 */
export async function deviceCreateCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  opts: WriteFlags,
): Promise<number> {
  // `{deviceId}/{moduleId}` is a module twin's id (docs/iot-hub.md, "Module identities and module twins"), never a device's
  if (!isValidDeviceId(deviceId))
    throw new CliError(
      `not a device id: ${JSON.stringify(deviceId)} (at most 128 ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ ')`,
    );
  return withClient(config, 'twinlog-cli', opts, async (client) => {
    const printKeys = async (): Promise<void> => {
      const { newDeviceKeys } = await import('@twinlog/gateway');
      const store = await deviceKeyStore(config);
      const keys = store.get(deviceId) ?? newDeviceKeys();
      store.set(deviceId, keys);
      io.out(`connection string: HostName=${config.hubName};DeviceId=${deviceId};SharedAccessKey=${keys.primaryKey}\n`);
    };
    if (opts.wait === false) {
      const r = await client.createDevice(deviceId);
      io.out(
        `appended create of ${deviceId} at ${r.topic}/${r.partition}@${r.offset} (not waiting for the projector)\n`,
      );
      await printKeys();
      return 0;
    }
    decided(await client.createDevice(deviceId, { wait: true }));
    const twin = await client.getTwin(deviceId);
    io.out(`created ${deviceId} (etag ${twin.etag}, version ${twin.version})\n`);
    await printKeys();
    return 0;
  });
}

export async function deviceDeleteCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  opts: WriteFlags,
): Promise<number> {
  return withClient(config, 'twinlog-cli', opts, async (client) => {
    // the device's modules go with it, as through the REST registry (docs/iot-hub.md, "Module identities and module twins")
    const store = await deviceKeyStore(config);
    for (const moduleId of store.modulesOf?.(deviceId) ?? []) {
      const twinId = `${deviceId}/${moduleId}`;
      if (opts.wait === false) await client.deleteDevice(twinId);
      else {
        const d = await client.deleteDevice(twinId, { wait: true });
        if (!d.accepted && d.code !== 'DEVICE_NOT_FOUND') decided(d);
      }
      store.delete(twinId);
      io.out(`deleted module ${moduleId} of ${deviceId}\n`);
    }
    if (opts.wait === false) {
      const r = await client.deleteDevice(deviceId);
      (await deviceKeyStore(config)).delete(deviceId);
      io.out(
        `appended delete of ${deviceId} at ${r.topic}/${r.partition}@${r.offset} (not waiting for the projector)\n`,
      );
      return 0;
    }
    decided(await client.deleteDevice(deviceId, { wait: true }));
    (await deviceKeyStore(config)).delete(deviceId);
    io.out(`deleted ${deviceId}\n`);
    return 0;
  });
}

/**
 * `twinlog device update <id> --status disabled [--status-reason …]`: the device's status in the
 * registry file `serve` reads, as `Registry.update` sets it (docs/iot-hub.md, "Device status"). A
 * disabled device is refused at MQTT CONNECT, and a running `serve` closes its open connection
 * within its status recheck interval (5 s by default). Only the registry is written, not the log.
 */
export async function deviceUpdateCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  opts: { status?: string; statusReason?: string; json?: boolean },
): Promise<number> {
  const status = opts.status?.toLowerCase();
  if (status !== undefined && status !== 'enabled' && status !== 'disabled')
    throw new CliError(`--status must be enabled or disabled, got '${opts.status}'`);
  if (status === undefined && opts.statusReason === undefined)
    throw new CliError('nothing to update: give --status enabled|disabled and/or --status-reason <text>');
  if (opts.statusReason !== undefined && opts.statusReason.length > 128)
    throw new CliError('--status-reason must be at most 128 characters');
  const { withDeviceStatus } = await import('@twinlog/gateway');
  const store = await deviceKeyStore(config);
  const keys = store.get(deviceId);
  if (keys === undefined) {
    throw new TwinlogError(
      'DEVICE_NOT_FOUND',
      `device ${deviceId} has no identity in the registry (${registryFileOf(config)}): create it with \`twinlog device create ${deviceId}\``,
    );
  }
  const next = withDeviceStatus(
    keys,
    {
      status,
      statusReason: opts.statusReason === undefined ? undefined : opts.statusReason === '' ? null : opts.statusReason,
    },
    Date.now(),
  );
  store.set(deviceId, next);
  const shown = {
    deviceId,
    status: next.status ?? 'enabled',
    statusReason: next.statusReason ?? null,
    statusUpdatedTime: next.statusUpdatedTime ?? null,
  };
  if (opts.json === true) io.out(`${JSON.stringify(shown)}\n`);
  else
    io.out(
      `${deviceId}: ${shown.status}${shown.statusReason === null ? '' : ` (${shown.statusReason})`}${shown.statusUpdatedTime === null ? '' : ` since ${shown.statusUpdatedTime}`}\n`,
    );
  return 0;
}

export async function deviceListCommand(config: CliConfig, io: CliIo, opts: { json?: boolean }): Promise<number> {
  return withStore(config, async (store) => {
    const twins = (await listTwins(store.log)).filter((t) => t.moduleId === undefined); // devices, not their module twins
    if (opts.json === true) {
      for (const t of twins)
        io.out(`${JSON.stringify({ deviceId: t.deviceId, status: t.status, version: t.version, etag: t.etag })}\n`);
      return 0;
    }
    if (twins.length === 0) {
      io.out(`no devices in ${store.description}\n`);
      return 0;
    }
    const width = Math.max(8, ...twins.map((t) => t.deviceId.length));
    io.out(`${'DEVICE'.padEnd(width)}  STATUS    VERSION  DESIRED  REPORTED  ETAG\n`);
    for (const t of twins) {
      io.out(
        `${t.deviceId.padEnd(width)}  ${t.status.padEnd(8)}  ${String(t.version).padStart(7)}  ${String(t.properties.desired.$version).padStart(7)}  ${String(t.properties.reported.$version).padStart(8)}  ${t.etag}\n`,
      );
    }
    return 0;
  });
}
