/**
 * The `twinlog` command as a real process, from its sources (`packages/cli/bin/twinlog-dev.mjs`;
 * the compiled bin that `npx twinlog` runs is tested in `test/install/`): bad arguments, then
 * `serve` on the embedded log driven by the other commands and by the
 * REST gateway, then `serve --kafka` on the int tier's broker.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, ROOT, startServe, type Served } from '../../../test/support/serveProcess.ts';
import { readRegistry } from '../../../test/support/registry.ts';
import { serveMetricDefinitions } from './internal/serveMetrics.ts';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a command from the repository root to its end, collecting its output. */
function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function twinlog(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return run(process.execPath, [BIN, ...args], env);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const metricsOf = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const metric = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('twinlog as a process', () => {
  it('answers bad arguments with one clear line and exit code 2, and help with 0', async () => {
    const runs = await Promise.all([
      twinlog(['frobnicate']),
      twinlog(['replay', '--until', 'yesterday']),
      twinlog(['tail', 'everything']),
      twinlog(['audit']),
      twinlog(['serve', '--port', 'http']),
      twinlog(['--help']),
    ]);
    const [unknown, until, feed, missing, port, help] = runs;
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toBe("twinlog: unknown command 'frobnicate' (see twinlog --help)\n");
    expect(until.code).toBe(2);
    expect(until.stderr).toBe(
      "twinlog: --until must be an ISO-8601 time (2026-11-28T12:00:00Z), an offset (a non-negative integer) or partition:offset pairs (0:1200,1:980), got 'yesterday'\n",
    );
    expect(feed.code).toBe(2);
    expect(feed.stderr).toContain(
      "'everything' is invalid for argument 'feed'. Allowed choices are changes, deltas, rejections, dead-letter",
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      "twinlog: missing required argument 'deviceId' (or --all, or --where <condition>, for a fleet)\n",
    );
    expect(port.code).toBe(2);
    expect(port.stderr).toBe("twinlog: --port must be a non-negative integer, got 'http'\n");
    for (const r of runs) expect(r.stderr.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: twinlog [options] [command]');
  });

  it('runs a benchmark and ends with its figures and ratios', { timeout: 60_000 }, async () => {
    const run = await twinlog(
      ['bench', 'fold'],
      cleanEnv({ BENCH_EVENTS: '2000', BENCH_DEVICES: '200', BENCH_ROUNDS: '1' }),
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(
      'twinlog bench fold: npm run bench:fold (tsx --conditions=source bench/fold.bench.ts)',
    );
    expect(run.stdout).toMatch(/^RESULT \{"decode_per_s":\d+,/m); // the benchmark's own output, streamed
    expect(run.stdout).toMatch(
      /\nfigures: decode_per_s [\d,]+, fold_per_s [\d,]+, naive_per_s [\d,]+, state_bytes_20_leaf [\d,]+\nratios: {2}fold_vs_decode [\d.]+, fold_vs_naive [\d.]+\n$/,
    );
  });

  describe('serve on the embedded log', () => {
    let dir: string;
    let served: Served;
    let store: string[];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-'));
      store = ['--data', dir];
      // configuration from a file, overridden by the environment, overridden by a flag
      const config = join(dir, 'twinlog.json');
      writeFileSync(config, JSON.stringify({ hubName: 'from-file', logLevel: 'debug', staleAfterMs: 600_000 }));
      served = await startServe(
        [...store, '--config', config, '--log-level', 'info', '--mqtt-port', '0'],
        cleanEnv({ TWINLOG_HUB_NAME: 'from-env' }),
      );
    }, 60_000);

    afterAll(async () => {
      if (served !== undefined && served.child.exitCode === null) served.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    it(
      'runs the tour: health, REST and CLI writes, delta, audit, query, metrics, replay, clean shutdown',
      { timeout: 120_000 },
      async () => {
        const { adminPort, gatewayPort, lines } = served;
        expect(lines.find((l) => l['msg'] === 'gateway listening')).toMatchObject({ hubName: 'from-env' });
        expect(lines.every((l) => typeof l['time'] === 'string' && typeof l['level'] === 'string')).toBe(true);
        expect(lines.some((l) => l['level'] === 'debug')).toBe(false); // --log-level info beats the file's debug
        expect(lines.some((l) => l['level'] === 'warn' && /plain HTTP/.test(String(l['msg'])))).toBe(true); // no TLS: said so

        const health = await fetch(`http://127.0.0.1:${adminPort}/health`);
        expect(health.status).toBe(200);
        expect(await health.json()).toMatchObject({
          status: 'ok',
          projector: { running: true, partitions: [0, 1, 2, 3] },
          gateway: { running: true, port: gatewayPort },
        });

        // a device through the IoT Hub REST registry, signed with the generated service policy
        const { key } = JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string };
        const sas = signServiceSas('from-env', 'iothubowner', key, Math.floor(Date.now() / 1000) + 600);
        const put = await fetch(`http://127.0.0.1:${gatewayPort}/devices/rest-1?api-version=2021-04-12`, {
          method: 'PUT',
          headers: { authorization: sas, 'content-type': 'application/json' },
          body: JSON.stringify({ deviceId: 'rest-1' }),
        });
        expect(put.status).toBe(200);
        const deviceKey = ((await put.json()) as { authentication: { symmetricKey: { primaryKey: string } } })
          .authentication.symmetricKey.primaryKey;

        // that device reports over MQTT (IoT Hub's twin topics; plain MQTT here, as no TLS files are given)
        /** A device connected over MQTT with IoT Hub's username and a SAS token signed with `key`. */
        const connectDevice = async (deviceId: string, key: string): Promise<mqtt.MqttClient> => {
          const client = mqtt.connect(`mqtt://127.0.0.1:${served.mqttPort!}`, {
            clientId: deviceId,
            username: `from-env/${deviceId}/?api-version=2021-04-12`,
            password: signDeviceSas('from-env', deviceId, key, Math.floor(Date.now() / 1000) + 600),
            protocolVersion: 4,
            reconnectPeriod: 0,
          });
          try {
            await new Promise<void>((resolve, reject) => {
              client.once('connect', () => resolve());
              client.once('error', reject);
            });
          } catch (e) {
            client.end(true);
            throw e;
          }
          return client;
        };
        const device = await connectDevice('rest-1', deviceKey);
        try {
          const response = new Promise<string>((resolve) => device.on('message', (topic: string) => resolve(topic)));
          await new Promise<void>((resolve, reject) =>
            device.subscribe('$iothub/twin/res/#', { qos: 0 }, (e) => (e ? reject(e) : resolve())),
          );
          device.publish('$iothub/twin/PATCH/properties/reported/?$rid=7', '{"fw":"1.0"}');
          expect(await response).toMatch(/^\$iothub\/twin\/res\/204\/\?\$rid=7/);
        } finally {
          device.end(true);
        }

        // and one through the CLI
        const created = await twinlog(['device', 'create', 'cli-1', ...store]);
        expect(created).toMatchObject({ code: 0, stderr: '' });
        const printed =
          /^created cli-1 \(etag \S+, version 2\)\nconnection string: HostName=[^;]+;DeviceId=cli-1;SharedAccessKey=(\S+)\n$/.exec(
            created.stdout,
          );
        expect(printed, created.stdout).not.toBeNull();
        // the keys it printed let the device in over MQTT at once (serve reads the same registry file)
        (await connectDevice('cli-1', printed![1]!)).end(true);
        const patched = await twinlog([
          'twin',
          'patch',
          'cli-1',
          '{"properties":{"desired":{"target":21}},"tags":{"site":"b"}}',
          ...store,
        ]);
        expect(patched.code).toBe(0);
        expect(JSON.parse(patched.stdout)).toMatchObject({
          deviceId: 'cli-1',
          tags: { site: 'b' },
          properties: { desired: { target: 21, $version: 2 } },
        });
        const beforeReport = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 20));
        const reported = await twinlog([
          'twin',
          'report',
          'cli-1',
          '{"target":{"value":21,"ac":200,"av":2}}',
          ...store,
        ]);
        expect(reported.code).toBe(0);

        const deltas = await twinlog([
          'tail',
          'deltas',
          '--device',
          'cli-1',
          '--from-beginning',
          '--until-converged',
          ...store,
        ]);
        expect(deltas.code).toBe(0);
        expect(deltas.stdout).toMatch(/cli-1 {2}converged: target=converged/);

        const conflict = await twinlog([
          'twin',
          'patch',
          'cli-1',
          '{"tags":{"site":"c"}}',
          '--if-match',
          'not-the-etag',
          ...store,
        ]);
        expect(conflict).toMatchObject({ code: 1, stdout: '' });
        expect(conflict.stderr).toBe(
          'twinlog: PRECONDITION_FAILED: The etag in the request does not match the etag of the twin\n',
        );

        const [audit, auditJson, unknownDevice, list, query, badQuery] = await Promise.all([
          twinlog(['audit', 'cli-1', ...store]),
          twinlog(['audit', 'cli-1', '--section', 'reported', '--json', ...store]),
          twinlog(['audit', 'nobody', ...store]),
          twinlog(['device', 'list', '--json', ...store]),
          twinlog(['query', 'SELECT deviceId, tags.site FROM devices WHERE properties.desired.target = 21', ...store]),
          twinlog(['query', 'SELECT FROM', ...store]),
        ]);
        expect(audit.code).toBe(0);
        const auditLines = audit.stdout.trimEnd().split('\n');
        expect(auditLines[0]).toBe('audit of cli-1 (4 of 4 events)');
        expect(auditLines[1]).toMatch(/^\S+Z {2}twinlog-cli +create +→ version 2 \(tags 0, desired 1, reported 1\)$/);
        expect(audit.stdout).toMatch(
          /twinlog-cli +desired +merge \{"target":21\} {2}→ version 4 \(tags 1, desired 2, reported 1\)/,
        );
        expect(audit.stdout).toMatch(
          /cli-1 +reported +merge \{"target":\{"value":21,"ac":200,"av":2\}\} {2}→ version 5 \(tags 1, desired 2, reported 2\)/,
        );
        expect(
          auditJson.stdout
            .trimEnd()
            .split('\n')
            .map((l) => JSON.parse(l) as unknown),
        ).toMatchObject([{ actor: 'cli-1', section: 'reported', versions: { reported: 2 } }]);
        expect(unknownDevice.code).toBe(1);
        expect(unknownDevice.stderr).toMatch(/^twinlog: DEVICE_NOT_FOUND: no events for device nobody/);

        expect(
          list.stdout
            .trimEnd()
            .split('\n')
            .map((l) => (JSON.parse(l) as { deviceId: string }).deviceId),
        ).toEqual(['cli-1', 'rest-1']);
        expect(query).toMatchObject({ code: 0, stdout: '{"deviceId":"cli-1","site":"b"}\n', stderr: '1 row\n' });
        expect(badQuery.code).toBe(1);
        expect(badQuery.stderr).toMatch(/^twinlog: QUERY_SYNTAX: /);

        // the gateway's queries go through the read model (its freshness header says so)
        const restQuery = await until('the query view', async () => {
          const response = await fetch(`http://127.0.0.1:${gatewayPort}/devices/query?api-version=2021-04-12`, {
            method: 'POST',
            headers: { authorization: sas, 'content-type': 'application/json' },
            body: JSON.stringify({ query: 'SELECT deviceId FROM devices WHERE properties.desired.target = 21' }),
          });
          const rows = (await response.json()) as unknown[];
          return response.status === 200 && rows.length === 1
            ? { rows, freshness: response.headers.get('x-twinlog-freshness') }
            : undefined;
        });
        expect(restQuery.rows).toEqual([{ deviceId: 'cli-1' }]);
        expect(restQuery.freshness).toBeTruthy();

        // bytes that are not an envelope, appended by another writer of the same SQLite file
        const raw = createEmbeddedLog({ path: join(dir, 'twinlog.db') });
        await raw.append('twin.backend', [{ key: 'cli-1', value: new Uint8Array([0xc1, 0x00]) }]);
        await raw.close();
        const deadLetters = await until('the dead letter', async () => {
          const run = await twinlog(['tail', 'dead-letter', '--from-beginning', '--no-follow', ...store]);
          return run.stdout === '' ? undefined : run.stdout;
        });
        expect(deadLetters).toMatch(/ {2}cli-1 {2}CODEC_\w+: .* \(2 bytes from twin\.backend\/\d@\d+\)\n$/);

        const metrics = await until('the rejection, the dead letter and the converged delta in /metrics', async () => {
          const text = await metricsOf(adminPort);
          return metric(text, 'twinlog_rejections_total{code="PRECONDITION_FAILED"}') === 1 &&
            metric(text, 'twinlog_delta_entries{status="converged"}') === 1 &&
            text.includes('\ntwinlog_dead_letters_total{code="CODEC_')
            ? text
            : undefined;
        });
        expect(metric(metrics, 'twinlog_projector_events_total{result="applied"}')).toBeGreaterThanOrEqual(5);
        expect(
          metric(metrics, 'twinlog_consumer_lag{group="twinlog-projector",topic="twin.backend",partition="0"}'),
        ).toBeGreaterThanOrEqual(0);
        expect(metrics).toMatch(
          /^twinlog_consumer_lag\{group="twinlog-reconciler",topic="twin.snapshots",partition="3"\} \d+$/m,
        );
        expect(metric(metrics, 'twinlog_gateway_requests_total{method="PUT",status="200"}')).toBe(1);
        expect(metric(metrics, 'twinlog_gateway_connections_total')).toBeGreaterThanOrEqual(1);
        expect(metrics).toMatch(/^twinlog_dead_letters_total\{code="CODEC_\w+"\} 1$/m);
        expect(metric(metrics, 'twinlog_up{part="projector"}')).toBe(1);
        expect(metric(metrics, 'twinlog_up{part="mqtt"}')).toBe(1);
        expect(metric(metrics, 'twinlog_read_model_twins')).toBe(2);
        expect(metric(metrics, 'twinlog_mqtt_events_total{kind="connect",status="0"}')).toBe(2); // rest-1 and cli-1
        // histograms (docs/operations.md): rest-1's reported PATCH over MQTT, the REST query, the projector's batches
        expect(metric(metrics, 'twinlog_mqtt_reported_ack_seconds_count')).toBe(1);
        expect(
          metric(metrics, 'twinlog_gateway_request_seconds_count{method="POST",route="query"}'),
        ).toBeGreaterThanOrEqual(1);
        expect(metric(metrics, 'twinlog_query_seconds_count{result="ok"}')).toBeGreaterThanOrEqual(1);
        for (const h of [
          'twinlog_projector_batch_seconds',
          'twinlog_projector_commit_seconds',
          'twinlog_projector_fold_event_seconds',
        ]) {
          expect(metric(metrics, `${h}_count`), h).toBeGreaterThanOrEqual(1);
          expect(metric(metrics, `${h}_bucket{le="+Inf"}`), h).toBe(metric(metrics, `${h}_count`));
        }
        // Node's process metrics, and every family serve declares (what the Grafana dashboard's test checks its queries against)
        expect(metric(metrics, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
        expect(metrics).toMatch(/^nodejs_eventloop_lag_p99_seconds \S+$/m);
        for (const name of Object.keys(serveMetricDefinitions({ embedded: true, mqtt: true })))
          expect(`\n${metrics}`, name).toContain(`\n# TYPE ${name} `);
        // The embedded log's storage (docs/storage.md): the file's size, what each topic holds, and
        // maintenance's counters (its first run comes 30 s after start, so they may still be 0).
        const onDisk = statSync(join(dir, 'twinlog.db')).size;
        expect(metric(metrics, 'twinlog_store_file_bytes')).toBeGreaterThanOrEqual(onDisk / 2);
        expect(metric(metrics, 'twinlog_store_wal_bytes')).toBeGreaterThanOrEqual(0);
        expect(metric(metrics, 'twinlog_store_topic_records{topic="twin.dead-letter"}')).toBe(1);
        expect(metric(metrics, 'twinlog_store_topic_records{topic="twin.changes"}')).toBeGreaterThanOrEqual(5);
        expect(metric(metrics, 'twinlog_store_topic_bytes{topic="twin.snapshots"}')).toBeGreaterThan(0);
        for (const series of [
          'twinlog_store_compacted_records_total',
          'twinlog_store_retention_deleted_total{reason="time"}',
          'twinlog_store_retention_deleted_total{reason="size"}',
          'twinlog_store_maintenance_runs_total',
          'twinlog_store_maintenance_seconds',
        ]) {
          expect(metric(metrics, series), series).toBeGreaterThanOrEqual(0);
        }
        expect((await twinlog(['audit', 'rest-1', '--section', 'reported', ...store])).stdout).toMatch(
          /rest-1 +reported +merge \{"fw":"1.0"\}/,
        );
        // secrets stay on disk: no key (the policy's, the devices') in the log lines or /metrics
        const secrets = [
          (JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string }).key,
          ...Object.values(readRegistry(dir)).flatMap((k) => [k.primaryKey, k.secondaryKey]),
        ];
        expect(secrets.length).toBeGreaterThanOrEqual(3);
        const logged = lines.map((l) => JSON.stringify(l)).join('\n');
        for (const key of secrets) {
          expect(logged.includes(key)).toBe(false);
          expect(metrics.includes(key)).toBe(false);
        }

        // time travel: the twin before the report; plain progress lines off a terminal
        const past = await twinlog(['replay', '--device', 'cli-1', '--until', beforeReport, ...store]);
        expect(past.code).toBe(0);
        expect(past.stdout).toMatch(/^replayed embedded:\S+ as of \S+ for device cli-1 in \d+\.\d s\n/);
        expect(past.stdout).toMatch(/\nrecords read \d+: applied 3, /);
        expect(past.stdout).toMatch(/\npartition \d: twin\.backend offsets \d+\.\.\d+, twin\.device offsets -\.\.-\n/);
        expect(JSON.parse(past.stdout.slice(past.stdout.indexOf('\n{')))).toMatchObject({
          deviceId: 'cli-1',
          properties: { reported: { $version: 1 } },
        });
        expect(past.stderr).toMatch(/^replay: 100% \d+\/\d+ records, [\d,]+ records\/s, ETA 0s\n$/);
        const rebuilt = join(dir, 'rebuilt');
        const all = await twinlog(['replay', '--json', '--into', rebuilt, ...store]);
        const result = JSON.parse(all.stdout) as {
          counts: { devices: number; applied: number };
          partitions: unknown[];
          into: string;
        };
        expect(result).toMatchObject({ counts: { devices: 2 }, into: join(rebuilt, 'twinlog.db') });
        expect(result.partitions).toHaveLength(4);
        // the rebuilt store holds the same twins
        const [liveList, rebuiltList] = await Promise.all([
          twinlog(['device', 'list', ...store]),
          twinlog(['device', 'list', '--data', rebuilt]),
        ]);
        expect(rebuiltList.stdout.replace(/^.*\n/, '')).toBe(liveList.stdout.replace(/^.*\n/, ''));

        // the other read and write commands
        const [get, rejections, changes, since] = await Promise.all([
          twinlog(['twin', 'get', 'cli-1', ...store]),
          twinlog(['tail', 'rejections', '--from-beginning', '--no-follow', ...store]),
          twinlog(['tail', 'changes', '--device', 'cli-1', '--from-beginning', '--limit', '2', '--json', ...store]),
          twinlog(['audit', 'cli-1', '--since', beforeReport, ...store]),
        ]);
        expect(since.stdout).toMatch(/^audit of cli-1 \(1 of 4 events\)\n\S+ {2}cli-1 +reported /);
        expect(JSON.parse(get.stdout)).toMatchObject({ deviceId: 'cli-1', version: 5 });
        expect(rejections.stdout).toMatch(/ {2}cli-1 {2}PRECONDITION_FAILED: /);
        expect(
          changes.stdout
            .trimEnd()
            .split('\n')
            .map((l) => JSON.parse(l) as unknown),
        ).toMatchObject([
          { kind: 'change', deviceId: 'cli-1', opType: 'createDeviceIdentity' },
          { kind: 'change', deviceId: 'cli-1', actor: 'twinlog-cli' },
        ]);
        const etag = (JSON.parse(get.stdout) as { etag: string }).etag;
        const replaced = await twinlog([
          'twin',
          'replace',
          'cli-1',
          '{"tags":{"site":"c"}}',
          '--if-match',
          etag,
          ...store,
        ]);
        expect(JSON.parse(replaced.stdout)).toMatchObject({
          tags: { site: 'c' },
          properties: { desired: { $version: 3 } },
        });
        expect(JSON.parse(replaced.stdout)).not.toHaveProperty('properties.desired.target');
        expect(await twinlog(['device', 'delete', 'rest-1', ...store])).toMatchObject({
          code: 0,
          stdout: 'deleted rest-1\n',
        });
        expect(await twinlog(['twin', 'get', 'rest-1', ...store])).toMatchObject({
          code: 1,
          stderr: expect.stringMatching(/^twinlog: DEVICE_NOT_FOUND: /) as unknown,
        });

        served.child.kill('SIGTERM');
        expect(await served.exited).toBe(0);
        expect(served.lines.at(-1)).toMatchObject({ msg: 'stopped', exitCode: 0 });
      },
    );
  });

  describe("the README's five-minute tour", () => {
    /** The `sh` block under the tour heading, as argv arrays (single and double quotes, `#` comments). */
    function tourCommands(): string[][] {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const from = readme.indexOf('## A five-minute tour with the CLI');
      const block = /```sh\n([\s\S]*?)\n```/.exec(readme.slice(from))![1]!;
      return block.split('\n').map((line) => {
        const args: string[] = [];
        let current: string | undefined;
        let quote: string | undefined;
        for (const ch of line) {
          if (quote !== undefined) {
            if (ch === quote) quote = undefined;
            else current += ch;
          } else if (ch === "'" || ch === '"') {
            quote = ch;
            current ??= '';
          } else if (ch === '#' && current === undefined) break;
          else if (ch === ' ') {
            if (current !== undefined) args.push(current);
            current = undefined;
          } else current = (current ?? '') + ch;
        }
        if (current !== undefined) args.push(current);
        return args;
      });
    }

    it('runs, command by command, against a serve', { timeout: 120_000 }, async () => {
      const commands = tourCommands();
      expect(commands[0]).toEqual(['npx', 'twinlog', 'serve', '&']);
      expect(commands.at(-1)).toEqual(['kill', '%1']);
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-tour-'));
      const served = await startServe(['--data', dir]);
      try {
        expect((await fetch(`http://127.0.0.1:${served.adminPort}/health`)).status).toBe(200);
        const outputs: Record<string, string> = {};
        let beforeReport = '';
        for (const argv of commands.filter((c) => c[0] === 'npx' && c[2] !== 'serve')) {
          expect(argv[1]).toBe('twinlog');
          const args = argv.slice(2).map((a) => (/^\d{4}-\d\d-\d\dT/.test(a) ? beforeReport : a));
          if (args[1] === 'report') {
            beforeReport = new Date().toISOString();
            await new Promise((r) => setTimeout(r, 20));
          }
          const run = await twinlog([...args, '--data', dir]);
          expect(run, args.join(' ')).toMatchObject({ code: 0 });
          outputs[`${args[0]} ${args[1]}`] = run.stdout;
        }
        expect(outputs['twin report']).toContain('"$version": 2');
        expect(outputs['tail deltas']).toMatch(/thermostat-1 {2}converged: targetTemperature=converged/);
        expect(outputs['audit thermostat-1']).toContain('audit of thermostat-1 (3 of 3 events)');
        expect(outputs['replay --device']).toMatch(/"targetTemperature": 21,/);
        expect(outputs['replay --device']).toMatch(
          /"reported": \{\n\s+"\$metadata": \{\n\s+"\$lastUpdated": "[^"]+"\n\s+\},\n\s+"\$version": 1\n/,
        );
        expect(outputs['query SELECT deviceId, properties.desired.targetTemperature AS target FROM devices']).toBe(
          '{"deviceId":"thermostat-1","target":21}\n',
        );
        expect(await metricsOf(served.adminPort)).toMatch(/^twinlog_delta_devices\{converged="true"\} 1$/m);
        served.child.kill('SIGTERM');
        expect(await served.exited).toBe(0);
      } finally {
        if (served.child.exitCode === null) served.child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('answers /health with 503 while the engine cannot start, and exits on SIGTERM', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-down-'));
    // nothing listens on port 1: the Kafka log keeps retrying to connect
    const child = spawn(
      process.execPath,
      [
        BIN,
        'serve',
        '--kafka',
        '127.0.0.1:1',
        '--data',
        dir,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--policy-key',
        Buffer.alloc(32, 7).toString('base64'),
      ],
      { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
      let out = '';
      const adminPort = await new Promise<number>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /"msg":"admin listening".*"adminPort":(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        void exited.then(() => reject(new Error(`exited early: ${out}`)));
      });
      const health = await fetch(`http://127.0.0.1:${adminPort}/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'starting', projector: { running: false } });
      child.kill('SIGTERM');
      expect(await exited).toBe(143);
      expect(out).toContain('"msg":"interrupted while starting: exiting"');
      expect(out).toMatch(/"level":"warn".*--policy-key is visible/); // a key on the command line shows in `ps`
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    'always exits after a DECISION_TIMEOUT on Kafka, saying the write may still be applied',
    { timeout: 120_000 },
    async () => {
      // no projector runs on this prefix: every write times out waiting for its decision
      const brokers = process.env['KAFKA_BROKERS'];
      expect(brokers, 'the int tier provides KAFKA_BROKERS').toBeTruthy();
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-timeout-'));
      const store = [
        '--kafka',
        brokers!,
        '--topic-prefix',
        `cli-to-${randomUUID().slice(0, 8)}.`,
        '--data',
        dir,
        '--partitions',
        '2',
        '--timeout',
        '1500',
      ];
      try {
        const runs = await Promise.all(
          [1, 2, 3].map((i) =>
            twinlog(['twin', 'patch', `t-${i}`, '{"properties":{"desired":{"fw":"1.2"}}}', ...store]),
          ),
        );
        for (const r of runs) {
          expect(r.code).toBe(1);
          expect(r.stderr).toMatch(/DECISION_TIMEOUT/);
          expect(r.stderr).toMatch(/may still be applied/);
          expect(r.stderr).toMatch(/Retry safely with `--idempotency-key \S+`/);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'applies a timed-out write once when it is retried with its idempotency key (Kafka)',
    { timeout: 180_000 },
    async () => {
      const brokers = process.env['KAFKA_BROKERS'];
      expect(brokers, 'the int tier provides KAFKA_BROKERS').toBeTruthy();
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-idem-'));
      const store = [
        '--kafka',
        brokers!,
        '--topic-prefix',
        `cli-idem-${randomUUID().slice(0, 8)}.`,
        '--data',
        dir,
        '--partitions',
        '2',
      ];
      const desiredVersion = async (): Promise<number> => {
        const got = await twinlog(['twin', 'get', 'i-1', ...store]);
        expect(got.code, got.stderr).toBe(0);
        return (JSON.parse(got.stdout) as { properties: { desired: { $version: number } } }).properties.desired
          .$version;
      };
      let served = await startServe(store);
      try {
        expect(await twinlog(['device', 'create', 'i-1', ...store])).toMatchObject({ code: 0 });
        const before = await desiredVersion();
        served.child.kill('SIGTERM');
        expect(await served.exited).toBe(0);

        // no projector: the write times out, and the error names its key
        const timedOut = await twinlog([
          'twin',
          'patch',
          'i-1',
          '{"properties":{"desired":{"n":1}}}',
          ...store,
          '--timeout',
          '1500',
        ]);
        expect(timedOut.code).toBe(1);
        const key = /--idempotency-key (\S+)`/.exec(timedOut.stderr)?.[1];
        expect(key, timedOut.stderr).toBeDefined();

        // the projector comes back and applies the first write; the retry with the key is not applied again
        served = await startServe(store);
        const retried = await twinlog([
          'twin',
          'patch',
          'i-1',
          '{"properties":{"desired":{"n":1}}}',
          ...store,
          '--idempotency-key',
          key!,
        ]);
        expect(retried.code, retried.stderr).toBe(0);
        expect(retried.stderr).toMatch(/already applied as event \S+: not applied again/);
        expect(JSON.parse(retried.stdout)).toMatchObject({ properties: { desired: { n: 1, $version: before + 1 } } });

        // a retry that races the first attempt (sent again while undecided) is applied once too
        const both = await Promise.all(
          [0, 1].map(() =>
            twinlog([
              'twin',
              'patch',
              'i-1',
              '{"properties":{"desired":{"n":2}}}',
              ...store,
              '--idempotency-key',
              'order-2',
            ]),
          ),
        );
        for (const r of both) expect(r.code, r.stderr).toBe(0);
        expect(both.filter((r) => /already applied/.test(r.stderr))).toHaveLength(1);
        expect(await desiredVersion()).toBe(before + 2);
        served.child.kill('SIGTERM');
        expect(await served.exited).toBe(0);
      } finally {
        if (served.child.exitCode === null) served.child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('serves on Kafka with --kafka', { timeout: 120_000 }, async () => {
    const brokers = process.env['KAFKA_BROKERS'];
    expect(brokers, 'the int tier provides KAFKA_BROKERS').toBeTruthy();
    const dir = mkdtempSync(join(tmpdir(), 'twinlog-cli-kafka-'));
    const store = [
      '--kafka',
      brokers!,
      '--topic-prefix',
      `cli-${randomUUID().slice(0, 8)}.`,
      '--data',
      dir,
      '--partitions',
      '2',
    ];
    const served = await startServe(store);
    try {
      expect(served.lines.find((l) => l['msg'] === 'log open')).toMatchObject({
        store: expect.stringMatching(/^kafka:/) as unknown,
      });
      expect((await fetch(`http://127.0.0.1:${served.adminPort}/health`)).status).toBe(200);
      expect(await twinlog(['device', 'create', 'k-1', ...store])).toMatchObject({ code: 0 });
      const patched = await twinlog(['twin', 'patch', 'k-1', '{"properties":{"desired":{"fw":"1.2"}}}', ...store]);
      expect(JSON.parse(patched.stdout)).toMatchObject({ properties: { desired: { fw: '1.2' } } });
      const audit = await twinlog(['audit', 'k-1', ...store]);
      expect(audit.stdout).toMatch(/twinlog-cli +desired +merge \{"fw":"1.2"\}/);
      // the fleet on two workers that this thread feeds from Kafka: the same as in one thread
      const fleet = ['audit', '--all', '--format', 'json', ...store];
      const [fed, alone] = await Promise.all([
        twinlog([...fleet, '--workers', '2']),
        twinlog([...fleet, '--workers', '0']),
      ]);
      expect(fed.code).toBe(0);
      expect(fed.stdout).toMatch(/"deviceId":"k-1"/);
      expect(fed.stdout).toBe(alone.stdout);
      const replayed = await twinlog(['replay', '--workers', '2', '--twins', '-', ...store]);
      expect(replayed.code).toBe(0);
      expect(replayed.stdout).toMatch(/"deviceId":"k-1"/);
      const metrics = await metricsOf(served.adminPort);
      expect(metrics).toMatch(
        /^twinlog_consumer_lag\{group="twinlog-projector",topic="twin.backend",partition="1"\} \d+$/m,
      );
      expect(metric(metrics, 'twinlog_projector_events_total{result="applied"}')).toBeGreaterThanOrEqual(2);
      served.child.kill('SIGTERM');
      expect(await served.exited).toBe(0);
    } finally {
      if (served.child.exitCode === null) served.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
