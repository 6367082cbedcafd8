/**
 * The Kafka broker of the integration tier, chosen once per run (CONTRIBUTING.md, "Integration tests";
 * docker/README.md):
 *
 * 1. `KAFKA_BROKERS` is set (comma-separated `host:port`): use it; start and stop nothing.
 * 2. Else, if a Docker engine answers: a `confluentinc/cp-kafka` container through testcontainers.
 *    testcontainers is **not** a dependency of this repository (no Docker engine on our machines,
 *    and a heavy install); it is loaded with a dynamic `import()`, so a developer with Docker can
 *    `npm i --no-save testcontainers@^11 @testcontainers/kafka@^11` (the 11.x line still supports
 *    Node 20) and get this rung; without the modules the rung is skipped.
 * 3. Else the local JVM broker of `docker/kafka-local.sh` (Java 17+ and Maven):
 *    - the developer's own (`npm run kafka:start`: `.kafka/`, port 19092) when it is running; it is
 *      left running;
 *    - otherwise a private one for this run: `TWINLOG_KAFKA_DIR` is a fresh temporary folder (its
 *      `libs` a link to the shared jar cache in `.kafka/libs`), on free ports, stopped and deleted
 *      at teardown. Private, because runs share a machine: when runs shared the default instance, the
 *      run that had started it stopped it at its teardown, under the feet of a run still going
 *      (seen here with two engineers testing at once). A fresh data folder per run also means
 *      no topics, offsets or transactions of earlier runs.
 * 4. Else throw, naming the three ways. A Kafka test never skips itself for want of a broker.
 *
 * `test/kafkaGlobalSetup.ts` runs this in the `int` project's global setup, hands the address to
 * tests through vitest's `provide`/`inject` (key `kafkaBrokers`, read it with {@link kafkaBrokers})
 * and sets `process.env.KAFKA_BROKERS` for test workers and the processes they spawn.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Bootstrap brokers of the integration tier, comma-separated `host:port`. */
    kafkaBrokers: string;
  }
}

export interface KafkaBroker {
  /** Comma-separated `host:port` list. */
  readonly brokers: string;
  /** Which rung supplied it. */
  readonly source: 'KAFKA_BROKERS' | 'testcontainers' | 'kafka-local.sh (already running)' | 'kafka-local.sh (private)';
  /** Stops what this run started (nothing for a broker it found running). */
  stop(): Promise<void>;
}

const ROOT = join(import.meta.dirname, '..');
const SCRIPT = join(ROOT, 'docker', 'kafka-local.sh');
/** A first run downloads Kafka through Maven (~45 s on a fresh machine); the script's own readiness timeout is 60 s. */
const START_TIMEOUT_MS = 240_000;
/** testcontainers' image for rung 2: Confluent Platform 8.1 is Apache Kafka 4.1, in KRaft mode. */
const CP_KAFKA_IMAGE = process.env['TWINLOG_CP_KAFKA_IMAGE'] ?? 'confluentinc/cp-kafka:8.1.0';

const HOW_TO =
  'The integration tier needs a Kafka broker. Provide one of:\n' +
  '  1. KAFKA_BROKERS=host:port[,host:port...] pointing at a running broker (e.g. `docker compose -f docker/compose.yml up -d --wait kafka` gives 127.0.0.1:9092);\n' +
  '  2. a Docker engine plus `npm i --no-save testcontainers@^11 @testcontainers/kafka@^11` (a container is started per run);\n' +
  '  3. Java 17+ and Maven for docker/kafka-local.sh (`npm run kafka:start` runs one you can reuse across runs; otherwise each run starts and stops a private one; see docker/README.md).';

/** The broker address provided by the global setup (inside tests). */
export function kafkaBrokers(): string {
  return inject('kafkaBrokers');
}

/** Picks (and if needed starts) the broker; see the module comment for the order. */
export async function startKafkaBroker(): Promise<KafkaBroker> {
  const fromEnv = process.env['KAFKA_BROKERS']?.trim();
  if (fromEnv !== undefined && fromEnv !== '') {
    return { brokers: fromEnv, source: 'KAFKA_BROKERS', stop: async () => {} };
  }
  const failures: string[] = [];
  try {
    const container = await startContainer();
    if (container !== undefined) return container;
    failures.push('testcontainers: no Docker engine, or testcontainers is not installed');
  } catch (e) {
    failures.push(`testcontainers: ${message(e)}`);
  }
  try {
    return await startLocal();
  } catch (e) {
    failures.push(`docker/kafka-local.sh: ${message(e)}`);
  }
  throw new Error(`${HOW_TO}\nTried:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Imports a module that may not be installed (a variable specifier keeps bundlers and tsc out of it). */
async function importOptional(name: string): Promise<Record<string, unknown> | undefined> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(message(e)))
      return undefined;
    throw e;
  }
}

interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

async function startContainer(): Promise<KafkaBroker | undefined> {
  const tc = await importOptional('testcontainers');
  const tcKafka = await importOptional('@testcontainers/kafka');
  if (tc === undefined || tcKafka === undefined) return undefined;
  const getClient = tc['getContainerRuntimeClient'] as (() => Promise<unknown>) | undefined;
  try {
    await getClient?.();
  } catch {
    return undefined; // "Could not find a working container runtime strategy": no Docker here
  }
  const KafkaContainer = tcKafka['KafkaContainer'] as new (image: string) => {
    withEnvironment(env: Record<string, string>): { start(): Promise<StartedContainer> };
  };
  const started = await new KafkaContainer(CP_KAFKA_IMAGE)
    .withEnvironment({
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
    })
    .start();
  return {
    brokers: `${started.getHost()}:${started.getMappedPort(9093)}`,
    source: 'testcontainers',
    stop: async () => {
      await started.stop();
    },
  };
}

/** Runs `docker/kafka-local.sh <command>`; resolves with its exit code and stdout (stderr passes through). */
function runScript(
  command: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, [command], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout: stdout.trim() });
    });
  });
}

/** `docker/kafka-local.sh status`: 0 running, 1 port closed, 3 stopped. */
function scriptStatus(): Promise<number> {
  return new Promise((resolve) => {
    execFile(SCRIPT, ['status'], { cwd: ROOT }, (error) =>
      resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : 1),
    );
  });
}

/** A TCP port nobody listens on right now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function startLocal(): Promise<KafkaBroker> {
  // The developer's own broker (`npm run kafka:start`), when it runs: use it, leave it running.
  // Runs never start that instance themselves, so a running one is never a run's.
  // (`TWINLOG_KAFKA_*` in the environment describe that instance, as they do for the script.)
  if ((await scriptStatus()) === 0) {
    const port = process.env['TWINLOG_KAFKA_PORT'] ?? '19092';
    return { brokers: `127.0.0.1:${port}`, source: 'kafka-local.sh (already running)', stop: async () => {} };
  }

  // Otherwise a private broker: own state folder, free ports, the shared jar cache.
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-kafka-'));
  const sharedLibs = join(ROOT, '.kafka', 'libs');
  mkdirSync(sharedLibs, { recursive: true });
  symlinkSync(sharedLibs, join(dir, 'libs'), 'dir');
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const env = {
    ...process.env,
    TWINLOG_KAFKA_DIR: dir,
    TWINLOG_KAFKA_PORT: String(port),
    TWINLOG_KAFKA_CONTROLLER_PORT: String(controllerPort),
  };
  // Should the run end without its teardown (Ctrl-C), do not leave the JVM behind.
  const killOnExit = (): void => {
    try {
      process.kill(Number(readFileSync(join(dir, 'broker.pid'), 'utf8').trim()), 'SIGKILL');
    } catch {
      // not started, or already gone
    }
  };
  process.once('exit', killOnExit);
  const remove = (): void => {
    process.removeListener('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true }); // removes the `libs` link, not the shared jars
  };

  const { code, stdout } = await runScript('start', START_TIMEOUT_MS, env);
  const brokers = stdout.split('\n').pop()?.trim() ?? '';
  if (code !== 0 || !/^[^\s:]+:\d+$/.test(brokers)) {
    await runScript('stop', 60_000, env).catch(() => undefined);
    remove();
    throw new Error(`\`docker/kafka-local.sh start\` failed (exit ${code}; its output is above)`);
  }
  return {
    brokers,
    source: 'kafka-local.sh (private)',
    stop: async () => {
      const stopped = await runScript('stop', 60_000, env);
      if (stopped.code !== 0)
        throw new Error(`\`docker/kafka-local.sh stop\` exited with ${stopped.code} (state in ${dir})`);
      remove();
    },
  };
}
