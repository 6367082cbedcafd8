/**
 * What a Kafka adapter's subscription says through `status()` (core's `RunStatus`), on a real
 * broker; every Kafka adapter runs these.
 *
 * A member its group gave no partitions (more members than partitions) is a standby in good
 * standing: its `status()` says `standby` with a live consumer, core's supervisor calls it
 * `standby` (healthy), and it takes the partition over when the member holding it leaves.
 */
import { isHealthyStageState, superviseStage, type LogRecord, type RunStatus } from '@twinlog/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  bytes,
  kafkaTestRun,
  sleep,
  type OpenKafkaLog,
  type StatusLog,
  type StatusSubscription,
} from './kafkaTestRun.ts';

/** Runs the `status()` tests (`Kafka subscription status (<name>)`) against the adapter `open` creates. */
export function runSubscriptionStatusSpecs<L extends StatusLog>(
  name: string,
  brokers: string,
  runPrefix: string,
  open: OpenKafkaLog<L>,
): void {
  describe(`Kafka subscription status (${name})`, () => {
    const { run } = kafkaTestRun(brokers, runPrefix);
    const opened: L[] = [];
    afterAll(async () => {
      await Promise.allSettled(opened.map((l) => l.close()));
    });
    const openLog = (topicPrefix: string): L => {
      const log = open({ brokers, topicPrefix });
      opened.push(log);
      return log;
    };

    it(
      'reads standby (healthy) while another member holds the only partition, and takes it over when that member stops',
      { timeout: 90_000 },
      async () => {
        const first = openLog(`${run}.`);
        const second = openLog(`${run}.`);
        await first.ensureTopics([{ name: 't', partitions: 1 }]);
        const got: Record<'m1' | 'm2', LogRecord[]> = { m1: [], m2: [] };
        const member = (name: 'm1' | 'm2') => ({
          group: 'g',
          topics: ['t'],
          eachBatch: async ({ records }: { records: readonly LogRecord[] }) => {
            got[name].push(...records);
          },
        });
        const s1 = await first.subscribe(member('m1'));
        expect(s1.status()).toMatchObject({ partitions: [0], fetching: true });
        expect(s1.status().standby).toBeUndefined();

        const s2 = await second.subscribe(member('m2'));
        // the group rebalances: one member holds the partition (the assigner picks which), the other gets none
        const subs = { m1: s1, m2: s2 };
        await vi.waitFor(
          () =>
            expect([s1.status().partitions, s2.status().partitions].sort((a, b) => b.length - a.length)).toEqual([
              [0],
              [],
            ]),
          { timeout: 30_000, interval: 100 },
        );
        const holderName = s1.status().partitions.length === 1 ? 'm1' : 'm2';
        const standbyName = holderName === 'm1' ? 'm2' : 'm1';
        const holder = subs[holderName];
        const standby = subs[standbyName];
        await vi.waitFor(() => expect(standby.status()).toEqual({ partitions: [], fetching: true, standby: true }), {
          timeout: 30_000,
          interval: 100,
        });
        expect(holder.status()).toEqual({ partitions: [0], fetching: true });

        // core's supervisor reads it as a healthy standby, and it stays so (its consumer keeps fetching and heartbeating)
        const current: StatusSubscription = standby;
        const states: string[] = [];
        const supervisor = superviseStage({
          name: 'standby-test',
          now: Date.now,
          schedule: (ms, fn) => {
            const t = setTimeout(fn, ms);
            return () => clearTimeout(t);
          },
          checkIntervalMs: 200,
          start: async () => ({
            ended: current.done,
            status: (): RunStatus => current.status(),
            stop: () => current.stop(),
          }),
          onChange: (h) => states.push(h.state),
        });
        const samples: RunStatus[] = [];
        for (let i = 0; i < 20; i++) {
          samples.push(standby.status());
          await sleep(250);
        }
        expect(
          samples.every((s) => s.standby === true && s.fetching && s.partitions.length === 0),
          JSON.stringify(samples),
        ).toBe(true);
        expect(supervisor.health()).toMatchObject({ state: 'standby', partitions: [] });
        expect(isHealthyStageState(supervisor.health().state)).toBe(true);

        // the holder leaves: the standby takes the partition over and consumes what comes next
        await holder.stop();
        await vi.waitFor(() => expect(standby.status()).toEqual({ partitions: [0], fetching: true }), {
          timeout: 30_000,
          interval: 100,
        });
        await first.append('t', [{ key: 'after', value: bytes('x') }]);
        await vi.waitFor(() => expect(got[standbyName].map((r) => r.key)).toContain('after'), {
          timeout: 30_000,
          interval: 100,
        });
        expect(got[holderName].map((r) => r.key)).not.toContain('after');
        await vi.waitFor(() => expect(supervisor.health().state).toBe('consuming'), { timeout: 5_000, interval: 100 });
        expect(states).toEqual(['standby', 'consuming']);
        await supervisor.stop();
      },
    );

    it(
      'a long batch whose heartbeats are answered stays fetching (a big catch-up batch is not a stall)',
      { timeout: 60_000 },
      async () => {
        const log = openLog(`${run}.long.`);
        await log.ensureTopics([{ name: 't', partitions: 1 }]);
        await log.append('t', [{ key: 'k', value: bytes('x') }]);
        let release: () => void = () => {};
        const held = new Promise<void>((r) => (release = r));
        let started = false;
        const sub = await log.subscribe({
          group: 'g',
          topics: ['t'],
          eachBatch: async () => {
            started = true;
            await held;
          },
        });
        await vi.waitFor(() => expect(started).toBe(true), { timeout: 30_000, interval: 50 });
        const samples: RunStatus[] = [];
        for (let i = 0; i < 24; i++) {
          samples.push(sub.status()); // 6 s: three times the 2 s without a fetch that marks an idle consumer stale
          await sleep(250);
        }
        release();
        expect(
          samples.filter((s) => !s.fetching),
          JSON.stringify(samples.filter((s) => !s.fetching)),
        ).toEqual([]);
        await sub.stop();
      },
    );
  });
}
