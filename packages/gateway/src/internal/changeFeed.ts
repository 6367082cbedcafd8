/**
 * The MQTT gateway's feed: `twin.changes` and `twin.rejections` consumed as a consumer group of
 * this gateway alone, each record handed to `onRecord` (decisions of the gateway's own writes,
 * desired notifications). A long-running stage like the projector's: supervised
 * (`superviseOnNode`, stage `mqtt-feed`), so that a consumer that dies (the broker gone, kafkajs
 * giving up) is restarted with backoff, forever, and `health()` says whether it consumes.
 *
 * Positions: the group starts at the topics' ends (what was decided before is covered by catch-up
 * on connect). The positions consumed are committed every `commitIntervalMs`, and every run
 * commits them all before it subscribes, so a restart (or a rejoin after a missed heartbeat)
 * resumes where the last run stopped: no desired notification is lost across a restart. Records
 * consumed again are harmless: decisions nobody waits for expire, notifications skip versions
 * already sent.
 *
 * (`log.subscribe`, not `log.read` loops: on Kafka a read is a consumer of its own.)
 */
import {
  describeError,
  type BackoffOptions,
  type Log,
  type LogRecord,
  type ObservableSubscription,
  type RunStatus,
  type StageHealth,
  type StageRun,
  type StageState,
} from '@twinlog/core';
import { superviseOnNode } from '@twinlog/projector';

/** The feed's stage name in `health()` and log lines. */
export const CHANGE_FEED_STAGE = 'mqtt-feed';

export interface ChangeFeedOptions {
  readonly log: Log;
  /** The gateway's own consumer group. */
  readonly group: string;
  readonly topics: readonly string[];
  /** One record of `topic`; a throw is reported through `onError` and the feed goes on. */
  readonly onRecord: (topic: string, record: LogRecord) => void;
  /** Failures that do not end a run (a record that threw, a periodic commit that failed). */
  readonly onError: (message: string) => void;
  /** Restart after a failure with exponential backoff (default `{}`: 250 ms doubling to 30 s); `false`: the first failure stops the feed. */
  readonly restart?: BackoffOptions | false;
  /** Called once per state change of the feed, not per retry. */
  readonly onStateChange?: ((health: StageHealth, previous: StageState) => void) | undefined;
  /** How often consumed positions are committed, ms (default 5000). */
  readonly commitIntervalMs?: number;
}

export interface ChangeFeed {
  /** Settles with the first run's start: rejects when it failed (the supervisor retries meanwhile). */
  readonly firstStart: Promise<void>;
  health(): StageHealth;
  /** Stop the supervisor and the current run, and the periodic commits. */
  stop(): Promise<void>;
}

/**
 * @example
 * const feed = startChangeFeed({ log, group, topics: [TOPICS.changes, TOPICS.rejections], onRecord, onError })
 * await feed.firstStart
 * feed.health().state // 'consuming'
 */
export function startChangeFeed({
  log,
  group,
  topics,
  onRecord,
  onError,
  restart = {},
  onStateChange,
  commitIntervalMs = 5_000,
}: ChangeFeedOptions): ChangeFeed {
  /** Next offset to consume, per topic and partition: set to the topics' ends by the first run. */
  const consumed = new Map<string, { topic: string; partition: number; offset: number }>();
  const committed = new Map<string, number>();
  let positioned = false;
  let committing: Promise<void> | undefined;

  const commit = async (all: boolean): Promise<void> => {
    const due = [...consumed].filter(([k, v]) => all || committed.get(k) !== v.offset);
    if (due.length === 0) return;
    await log.commitOffsets(due.map(([, v]) => ({ group, ...v })));
    for (const [k, v] of due) committed.set(k, v.offset);
  };
  const commitTimer = setInterval(() => {
    if (committing !== undefined) return;
    committing = commit(false)
      .catch((e: unknown) => onError(`committing the feed's offsets: ${describeError(e)}`))
      .finally(() => (committing = undefined));
  }, commitIntervalMs);
  commitTimer.unref();

  /** One run: commit the positions (the topics' ends the first time), then subscribe. */
  const startRun = async (): Promise<StageRun> => {
    if (!positioned) {
      for (const topic of topics) {
        const ends = await log.endOffsets(topic);
        ends.forEach((offset, partition) => consumed.set(`${topic}\u0000${partition}`, { topic, partition, offset }));
      }
      positioned = true;
    }
    await committing;
    await commit(true);
    const held = new Set<number>();
    const sub: ObservableSubscription = await log.subscribe({
      group,
      topics: [...topics],
      onAssign: async (ps) => {
        for (const p of ps) held.add(p);
      },
      onRevoke: async (ps) => {
        for (const p of ps) held.delete(p);
      },
      async eachBatch({ topic, partition, records }) {
        const last = records[records.length - 1];
        if (last !== undefined)
          consumed.set(`${topic}\u0000${partition}`, { topic, partition, offset: last.offset + 1 });
        for (const r of records) {
          try {
            onRecord(topic, r);
          } catch (e) {
            onError(`${topic}: ${describeError(e)}`);
          }
        }
      },
    });
    const ended = sub.done ?? new Promise<void>(() => {}); // a log that cannot tell: the run lasts until stopped
    ended.catch(() => {});
    return {
      ended,
      stop: () => sub.stop().catch(() => {}), // a failed run's stop rejects with the error `ended` carries
      status: (): RunStatus => sub.status?.() ?? { partitions: [...held].sort((a, b) => a - b) },
    };
  };

  const first = startRun();
  first.catch(() => {});
  const firstStart = first.then(() => {});
  firstStart.catch(() => {});

  if (restart === false) return crashOnly(first, firstStart, commitTimer);

  let pending: Promise<StageRun> | undefined = first;
  const supervisor = superviseOnNode({
    name: CHANGE_FEED_STAGE,
    ...restart,
    start: () => {
      const next = pending ?? startRun();
      pending = undefined;
      return next;
    },
    ...(onStateChange === undefined ? {} : { onChange: onStateChange }),
  });
  return {
    firstStart,
    health: () => supervisor.health(),
    async stop() {
      clearInterval(commitTimer);
      await supervisor.stop();
    },
  };
}

/** Without restarts: the first run is the only one; `stopped` once it failed or was stopped. */
function crashOnly(first: Promise<StageRun>, firstStart: Promise<void>, commitTimer: NodeJS.Timeout): ChangeFeed {
  let run: StageRun | undefined;
  let failure: unknown;
  let stopped = false;
  const since = Date.now();
  void first.then(
    (r) => {
      run = r;
      r.ended.catch((e: unknown) => (failure = e));
    },
    (e: unknown) => (failure = e),
  );
  return {
    firstStart,
    health(): StageHealth {
      const partitions = run?.status().partitions ?? [];
      const state: StageState =
        stopped || failure !== undefined
          ? 'stopped'
          : run === undefined
            ? 'starting'
            : partitions.length > 0
              ? 'consuming'
              : 'starting';
      return {
        stage: CHANGE_FEED_STAGE,
        state,
        reason: failure === undefined ? undefined : describeError(failure),
        since,
        partitions: [...partitions],
        restarts: 0,
      };
    },
    async stop() {
      stopped = true;
      clearInterval(commitTimer);
      await (await first.catch(() => undefined))?.stop();
    },
  };
}
