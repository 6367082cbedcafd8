/**
 * bench:pipeline's steady-state variant, the projector's side: fresh twin topics, a projector on
 * Kafka (createKafkaLog and startProjector defaults) in this process, and bench/internal/steadyDriver.ts
 * in a child process producing at a fixed rate and measuring lag and end-to-end latency. The CPU of
 * this process, of the child and of the broker is taken over the production window.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { createKafkaLog } from '@twinlog/log-kafka';
import { ensureTwinTopics, startProjector } from '@twinlog/projector';
import type { BrokerProcess } from './brokerCpu.ts';
import type { SteadyConfig, SteadyFigures } from './steadyDriver.ts';

export interface SteadyResult {
  readonly figures: SteadyFigures;
  readonly windowMs: number;
  /** CPU of this process (the projector) over the window, ms. */
  readonly nodeCpuMs: number;
  readonly brokerCpuMs: number | undefined;
  readonly rebalanced: boolean;
}

/** Longest the child may take to generate and encode its workload before the window, s. */
const GENERATE_TIMEOUT_S = 240;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runSteady(
  options: Omit<SteadyConfig, 'group'> & { readonly broker: BrokerProcess | undefined; readonly timeoutS: number },
): Promise<SteadyResult> {
  const { broker, timeoutS, ...rest } = options;
  const config: SteadyConfig = { ...rest, group: 'bench-steady' };
  const log = createKafkaLog({ brokers: [...config.brokers], topicPrefix: config.prefix, clientId: 'twinlog-bench' });
  await ensureTwinTopics(log, config.partitions);
  const projector = await startProjector({ log, group: config.group, physicalNow: () => Date.now() });
  let failed: unknown;
  projector.done.catch((e: unknown) => (failed = e));
  try {
    // the projector owns all partitions before the producer starts
    for (const until = Date.now() + 60_000; projector.partitions().length < config.partitions; await sleep(50)) {
      if (Date.now() > until || failed !== undefined)
        throw new Error(
          `steady: the projector owns ${projector.partitions().length} of ${config.partitions} partitions after 60 s`,
        );
    }
    const child = fork(join(import.meta.dirname, 'steadyDriver.ts'), [], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      env: { ...process.env, BENCH_STEADY_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let cpu0 = process.cpuUsage();
    let broker0 = broker?.cpuMs();
    let t0 = performance.now();
    let windowMs = 0;
    let nodeCpuMs = 0;
    let brokerCpuMs: number | undefined;
    let partitionsSeen = projector.partitions().length;
    let rebalanced = false;
    const watch = setInterval(() => {
      const n = projector.partitions().length;
      if (n !== partitionsSeen) rebalanced = true;
      partitionsSeen = n;
    }, 250);
    try {
      const figures = await new Promise<SteadyFigures>((resolve, reject) => {
        // generating the workload comes first and gets its own allowance; timeoutS counts from the window's start
        const giveUp = (what: string): NodeJS.Timeout =>
          setTimeout(
            () => {
              child.kill('SIGKILL');
              reject(new Error(`steady: ${what}`));
            },
            (what.startsWith('no figures') ? timeoutS : GENERATE_TIMEOUT_S) * 1000,
          );
        let timer = giveUp(`the workload was not generated within ${GENERATE_TIMEOUT_S} s`);
        child.on('message', (m: { type: string; figures?: SteadyFigures; message?: string }) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            timer = giveUp(`no figures within ${timeoutS} s of the window's start`);
            cpu0 = process.cpuUsage();
            broker0 = broker?.cpuMs();
            t0 = performance.now();
          } else if (m.type === 'window-end') {
            windowMs = performance.now() - t0;
            const u = process.cpuUsage(cpu0);
            nodeCpuMs = (u.user + u.system) / 1000;
            const b = broker?.cpuMs();
            brokerCpuMs = b === undefined || broker0 === undefined ? undefined : b - broker0;
          } else if (m.type === 'figures') {
            clearTimeout(timer);
            resolve(m.figures!);
          } else if (m.type === 'error') {
            clearTimeout(timer);
            reject(new Error(`steady driver: ${m.message}`));
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`steady driver exited with ${String(code)}`));
        });
      });
      return { figures, windowMs, nodeCpuMs, brokerCpuMs, rebalanced };
    } finally {
      clearInterval(watch);
      if (child.exitCode === null) child.kill();
    }
  } finally {
    await projector.stop().catch(() => {});
    await log.close();
    if (failed !== undefined) {
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- whatever the projector rejected with
      console.log(`  steady: projector failed: ${failed instanceof Error ? failed.message : String(failed)}`);
    }
  }
}
