/**
 * Issue 12, "Self-healing": `twinlog serve --kafka` under steady write load while its broker is
 * stopped and restarted five times (outages of 5 to 60 s, the broker restarted on the same port and
 * data folder). Shows that `/health` went 503 during each outage and 200 after, that every write
 * acknowledged before, during (where it got an answer) and after the outages is in the twins, that
 * no write was applied twice (a device's twin version equals the number of distinct writes in it),
 * and that the projector's consumer lag is back to 0. serve runs its MQTT gateway too: its feed
 * (`mqtt-feed`) is named unhealthy during the outages, and after the last one a device connected
 * over MQTT gets a desired notification and an answer to its reported PATCH.
 *
 * Needs a broker of its own (the suite's shared one cannot be stopped): a private
 * `docker/kafka-local.sh` instance in a temporary folder on free ports, stopped and deleted at the
 * end. Takes about four minutes; `TWINLOG_OUTAGES=5,10` shortens it while developing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient } from '@twinlog/client';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import { createKafkaLog } from '@twinlog/log-kafka';
import { listTwins } from '@twinlog/projector';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const SCRIPT = join(ROOT, 'docker', 'kafka-local.sh');
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'twinlog-dev.mjs'); // the CLI from its sources
const OUTAGES_S = (process.env['TWINLOG_OUTAGES'] ?? '5,10,15,20,60').split(',').map(Number);
const DEVICES = 8;
const WRITE_TIMEOUT_MS = 8_000;
const HUB = 'outage-hub';
const API = 'api-version=2021-04-12';
/** Outages at least this long must show the MQTT feed among the unhealthy stages (shorter ones may end before it is noticed). */
const FEED_NAMED_FROM_S = 10;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** `docker/kafka-local.sh <cmd>` on the private broker. */
function script(cmd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(SCRIPT, [cmd], { env: { ...process.env, ...env }, timeout: 180_000 }, (e, stdout, stderr) => {
      if (e) reject(new Error(`kafka-local.sh ${cmd} failed: ${e.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

interface HealthSample {
  readonly at: number;
  readonly status: number;
  readonly body: Record<string, unknown> | undefined;
}

// Both Kafka client libraries behind `--kafka-client`: the default first.
for (const kafkaClient of ['platformatic', 'kafkajs'] as const) {
  describe(`broker outages under write load (issue 12, self-healing), client ${kafkaClient}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-outage-'));
    const kafkaDir = join(dir, 'kafka');
    const dataDir = join(dir, 'data');
    let brokerEnv: NodeJS.ProcessEnv = {};
    let serveChild: ChildProcess | undefined;
    let device: mqtt.MqttClient | undefined;

    afterAll(async () => {
      device?.end(true);
      if (serveChild !== undefined && serveChild.exitCode === null) {
        serveChild.kill('SIGTERM');
        await new Promise((r) => serveChild!.once('close', r));
      }
      await script('stop', brokerEnv).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    it(
      'restarts every stage after each outage, /health 503 during and 200 after, every acknowledged write applied once, lag back to 0',
      { timeout: 600_000 },
      async () => {
        // --- a private broker ---------------------------------------------------------------------------
        const port = await freePort();
        let controller = await freePort();
        while (controller === port) controller = await freePort();
        const sharedLibs = join(ROOT, '.kafka', 'libs');
        if (existsSync(sharedLibs)) {
          // the jars are shared with the suite's brokers (kafkaBroker.ts does the same)
          (await import('node:fs')).mkdirSync(kafkaDir, { recursive: true });
          symlinkSync(sharedLibs, join(kafkaDir, 'libs'));
        }
        brokerEnv = {
          TWINLOG_KAFKA_DIR: kafkaDir,
          TWINLOG_KAFKA_PORT: String(port),
          TWINLOG_KAFKA_CONTROLLER_PORT: String(controller),
          TWINLOG_KAFKA_HEAP_OPTS: '-Xms256m -Xmx512m',
          TWINLOG_KAFKA_STOP_TIMEOUT: '10',
        };
        const brokers = await script('start', brokerEnv);
        const prefix = `outage-${randomUUID().slice(0, 8)}.`;

        // --- serve --kafka ------------------------------------------------------------------------------
        const env: NodeJS.ProcessEnv = {};
        for (const [k, v] of Object.entries(process.env))
          if (!k.startsWith('TWINLOG_') && k !== 'KAFKA_BROKERS') env[k] = v;
        const lines: Record<string, unknown>[] = [];
        let stderr = '';
        const child = spawn(
          process.execPath,
          [
            BIN,
            'serve',
            '--kafka',
            brokers,
            '--kafka-client',
            kafkaClient,
            '--topic-prefix',
            prefix,
            '--data',
            dataDir,
            '--partitions',
            '2',
            '--port',
            '0',
            '--admin-port',
            '0',
            '--mqtt-port',
            '0',
            '--hub-name',
            HUB,
          ],
          { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        serveChild = child;
        child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
        const { adminPort, gatewayPort, mqttPort } = await new Promise<{
          adminPort: number;
          gatewayPort: number;
          mqttPort: number;
        }>((resolve, reject) => {
          let buffer = '';
          child.stdout.setEncoding('utf8').on('data', (c: string) => {
            buffer += c;
            let nl: number;
            while ((nl = buffer.indexOf('\n')) >= 0) {
              const entry = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
              buffer = buffer.slice(nl + 1);
              lines.push(entry);
              if (entry['msg'] === 'serving')
                resolve({
                  adminPort: entry['adminPort'] as number,
                  gatewayPort: entry['gatewayPort'] as number,
                  mqttPort: entry['mqttPort'] as number,
                });
            }
          });
          child.once('close', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
        });

        // --- /health, sampled every 250 ms -----------------------------------------------------------------
        const samples: HealthSample[] = [];
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const at = Date.now();
            try {
              const res = await fetch(`http://127.0.0.1:${adminPort}/health`, { signal: AbortSignal.timeout(2000) });
              samples.push({ at, status: res.status, body: (await res.json()) as Record<string, unknown> });
            } catch {
              samples.push({ at, status: 0, body: undefined });
            }
            await sleep(250);
          }
        })();
        const waitHealthy = async (ms: number): Promise<number> => {
          const deadline = Date.now() + ms;
          for (;;) {
            const last = samples[samples.length - 1];
            if (last !== undefined && last.status === 200 && last.at > Date.now() - 1000) return last.at;
            if (Date.now() > deadline)
              throw new Error(`/health not 200 within ${ms} ms: ${JSON.stringify(last?.body)}`);
            await sleep(100);
          }
        };
        await waitHealthy(60_000);

        // --- steady write load: one tag write after another, each a distinct key ------------------------------
        const log = createKafkaLog({
          brokers,
          topicPrefix: prefix,
          clientId: 'outage-test-writer',
          logLevel: 'nothing',
          connectionTimeout: 1000,
          requestTimeout: 5000,
        });
        const client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'outage-test' });
        const baseline = new Map<string, number>(); // device → twin version after its creation
        for (let d = 0; d < DEVICES; d++) {
          const decision = await client.createDevice(`dev-${d}`, { wait: true });
          expect(decision.accepted).toBe(true);
          baseline.set(`dev-${d}`, decision.accepted ? decision.version : 0);
        }

        // --- a device over MQTT, created through the REST gateway (for its key), subscribed to desired notifications ---
        const policyKey = (JSON.parse(readFileSync(join(dataDir, 'service-policy.json'), 'utf8')) as { key: string })
          .key;
        const put = await fetch(`http://127.0.0.1:${gatewayPort}/devices/mqtt-dev?${API}`, {
          method: 'PUT',
          headers: {
            authorization: signServiceSas(HUB, 'iothubowner', policyKey, Math.floor(Date.now() / 1000) + 3600),
            'content-type': 'application/json',
          },
          body: JSON.stringify({ deviceId: 'mqtt-dev' }),
        });
        expect(put.status).toBe(200);
        const deviceKey = ((await put.json()) as { authentication: { symmetricKey: { primaryKey: string } } })
          .authentication.symmetricKey.primaryKey;
        const desiredSeen: Record<string, unknown>[] = [];
        const responses: string[] = [];
        device = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
          clientId: 'mqtt-dev',
          username: `${HUB}/mqtt-dev/?${API}`,
          password: signDeviceSas(HUB, 'mqtt-dev', deviceKey, Math.floor(Date.now() / 1000) + 3600),
          protocolVersion: 4,
          reconnectPeriod: 1000, // the gateway stays up through the outages; reconnect should anything drop it anyway
        });
        device.on('error', () => {});
        device.on('message', (topic, payload) => {
          if (topic.startsWith('$iothub/twin/PATCH/properties/desired/'))
            desiredSeen.push(JSON.parse(payload.toString()) as Record<string, unknown>);
          else if (topic.startsWith('$iothub/twin/res/')) responses.push(topic);
        });
        await new Promise<void>((resolve) => device!.once('connect', () => resolve()));
        await new Promise<void>((resolve, reject) =>
          device!.subscribe(['$iothub/twin/PATCH/properties/desired/#', '$iothub/twin/res/#'], { qos: 0 }, (e) =>
            e ? reject(e) : resolve(),
          ),
        );
        await sleep(500); // the subscription's catch-up baseline is recorded

        const acked = new Map<string, Set<string>>(); // device → keys acknowledged
        const unanswered: string[] = [];
        let writing = true;
        let seq = 0;
        const writer = (async () => {
          while (writing) {
            const i = seq++;
            const deviceId = `dev-${i % DEVICES}`;
            const key = `w${i}`;
            let timer: NodeJS.Timeout | undefined;
            try {
              await Promise.race([
                client.mergeTags(deviceId, { [key]: i }),
                new Promise(
                  (_, reject) => (timer = setTimeout(() => reject(new Error('no answer')), WRITE_TIMEOUT_MS)),
                ),
              ]);
              let keys = acked.get(deviceId);
              if (keys === undefined) acked.set(deviceId, (keys = new Set()));
              keys.add(key);
            } catch {
              unanswered.push(key);
              await sleep(200);
            } finally {
              clearTimeout(timer);
            }
            await sleep(40);
          }
        })();

        // --- the outages ----------------------------------------------------------------------------------
        const windows: { stoppedAt: number; startedAt: number; healthyAt: number }[] = [];
        await sleep(5_000);
        for (const seconds of OUTAGES_S) {
          await script('stop', brokerEnv);
          const stoppedAt = Date.now();
          await sleep(seconds * 1000);
          await script('start', brokerEnv);
          const startedAt = Date.now();
          const healthyAt = await waitHealthy(120_000);
          windows.push({ stoppedAt, startedAt, healthyAt });
          await sleep(3_000); // writes between outages
        }
        writing = false;
        await writer;

        // --- after the last outage, the MQTT device is served again: a desired notification, a reported PATCH answered ---
        await client.mergeDesired('mqtt-dev', { after: 'outages' });
        const notifiedWithin = Date.now() + 30_000;
        while (!desiredSeen.some((d) => d['after'] === 'outages') && Date.now() < notifiedWithin) await sleep(100);
        device.publish('$iothub/twin/PATCH/properties/reported/?$rid=after-outages', JSON.stringify({ back: true }));
        const answeredWithin = Date.now() + 30_000;
        while (!responses.some((t) => t.includes('$rid=after-outages')) && Date.now() < answeredWithin)
          await sleep(100);

        // --- lag back to 0, then the twins ------------------------------------------------------------------
        const group = `${''}twinlog-projector`;
        let lag = Number.POSITIVE_INFINITY;
        for (let deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(500)) {
          lag = 0;
          for (const topic of ['twin.backend', 'twin.device']) {
            const [ends, committed] = await Promise.all([log.endOffsets(topic), log.committedOffsets(group, topic)]);
            ends.forEach((end, p) => (lag += Math.max(0, end - (committed[p] ?? 0))));
          }
          if (lag === 0) break;
        }
        sampling = false;
        await sampler;

        const twins = new Map((await listTwins(log)).map((t) => [t.deviceId, t]));
        await log.close();

        // --- figures first, then the assertions ---------------------------------------------------------------
        const ackedCount = [...acked.values()].reduce((n, s) => n + s.size, 0);
        const feedUnhealthy = (s: HealthSample): boolean =>
          Array.isArray(s.body?.['unhealthy']) &&
          (s.body['unhealthy'] as { stage: string }[]).some((u) => u.stage === 'mqtt-feed');
        const perOutage = windows.map((w, k) => {
          const during = samples.filter((s) => s.at >= w.stoppedAt && s.at <= w.startedAt);
          return {
            outageS: OUTAGES_S[k],
            saw503: during.some((s) => s.status === 503),
            samples: during.length,
            recoveredInS: Math.round((w.healthyAt - w.startedAt) / 100) / 10,
            unhealthy: during.find((s) => s.status === 503)?.body?.['unhealthy'],
            feedNamed: during.some((s) => s.status === 503 && feedUnhealthy(s)),
          };
        });
        const stageLines = lines.filter((l) => typeof l['stage'] === 'string' && typeof l['state'] === 'string');
        const errorLines = lines.filter((l) => l['level'] === 'error' || l['level'] === 'warn');
        console.error(
          JSON.stringify(
            {
              writes: seq,
              acked: ackedCount,
              unanswered: unanswered.length,
              lag,
              perOutage,
              stageLines: stageLines.length,
              warnOrErrorLines: errorLines.length,
              mqtt: { desiredSeen, responses },
            },
            null,
            1,
          ),
        );
        for (const l of stageLines) console.error(`  ${String(l['msg'])}`);

        for (const o of perOutage) expect(o, `outage of ${o.outageS} s`).toMatchObject({ saw503: true });
        for (const o of perOutage.filter((x) => x.outageS! >= FEED_NAMED_FROM_S))
          expect(o, `outage of ${o.outageS} s`).toMatchObject({ feedNamed: true });
        expect(desiredSeen, 'a desired change made after the outages reaches the MQTT device').toContainEqual(
          expect.objectContaining({ after: 'outages' }),
        );
        expect(
          responses.find((t) => t.includes('$rid=after-outages')),
          'its reported PATCH is answered',
        ).toMatch(/^\$iothub\/twin\/res\/204\//);
        expect(windows).toHaveLength(OUTAGES_S.length);
        expect(lag).toBe(0);
        expect(ackedCount).toBeGreaterThan(100);
        for (const [deviceId, keys] of acked) {
          const twin = twins.get(deviceId);
          expect(twin, deviceId).toBeDefined();
          const tags = (twin as unknown as { tags: Record<string, unknown> }).tags;
          for (const key of keys) expect(tags[key], `${deviceId} ${key}`).toBeDefined();
          // every write is a distinct key: the version counts the writes applied, once each
          const present = Object.keys(tags).filter((k) => /^w\d+$/.test(k)).length;
          expect((twin as unknown as { version: number }).version, deviceId).toBe(baseline.get(deviceId)! + present);
        }
        // one line per state change per stage, not per retry: a handful per outage
        expect(stageLines.length).toBeLessThanOrEqual(OUTAGES_S.length * 4 * 4 + 8);
        for (const l of stageLines.filter((x) => x['state'] === 'restarting'))
          expect(String(l['msg'])).toMatch(/retrying in/);
        expect(stageLines.some((l) => l['state'] === 'consuming' && l['previous'] !== 'starting')).toBe(true);
        expect(
          stageLines.some(
            (l) => l['stage'] === 'mqtt-feed' && l['state'] === 'consuming' && l['previous'] !== 'starting',
          ),
        ).toBe(true);
      },
    );
  });
}
