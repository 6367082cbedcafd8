/**
 * `twinlog serve` runs IoT Hub jobs durably (docs/iot-hub.md, "Jobs"): a twin-update job created
 * with `twinlog job create` survives a SIGKILL of `serve` in the middle of its devices, resumes
 * when `serve` starts again on the same data folder, completes with every matching device counted
 * once, and applies each twin exactly once (desired `$version` 2 everywhere: a fresh twin's 1 plus
 * the job's one write, though the resumed job appends again the writes it had not recorded); on the
 * embedded log and on Kafka.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createTwinClient } from '@twinlog/client';
import type { Log } from '@twinlog/core';
import { signServiceSas } from '@twinlog/gateway';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, listTwins } from '@twinlog/projector';
import { describe, expect, it } from 'vitest';
import { openLog } from '../../../test/support/openLog.ts';
import { startServe, type Served } from '../../../test/support/serveProcess.ts';
import { runCli } from './runCli.ts';

const DEVICES = 1500;

async function cli(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    stderrIsTTY: false,
    env: {},
  });
  return { code, out, err };
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Job {
  status: string;
  deviceJobStatistics: {
    deviceCount: number;
    succeededCount: number;
    failedCount: number;
    pendingCount: number;
    runningCount: number;
  };
}

for (const kind of ['embedded', 'kafka'] as const)
  describe(`serve with jobs on the ${kind} log`, () => {
    it(
      'a job survives SIGKILL of serve mid-job and completes after the restart, applying each twin once',
      { timeout: 240_000 },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), 'twinlog-serve-jobs-'));
        const prefix = `jobs-${randomUUID().slice(0, 8)}.`;
        if (kind === 'kafka') expect(process.env['KAFKA_BROKERS'], 'the int tier provides KAFKA_BROKERS').toBeTruthy();
        const store =
          kind === 'embedded'
            ? ['--data', dir, '--partitions', '2']
            : ['--kafka', process.env['KAFKA_BROKERS']!, '--topic-prefix', prefix, '--data', dir, '--partitions', '2'];
        const openFleetLog = (): Log =>
          kind === 'embedded' ? createEmbeddedLog({ path: join(dir, 'twinlog.db') }) : openLog({ kind, where: prefix });
        let served: Served | undefined;
        try {
          // the fleet, written before serve starts (serve folds it when it starts)
          const log = openFleetLog();
          await ensureTwinTopics(log, 2);
          const client = createTwinClient({ log, physicalNow: Date.now, actor: 'serve-jobs-test' });
          for (let i = 0; i < DEVICES; i += 100) {
            await Promise.all(
              Array.from({ length: Math.min(100, DEVICES - i) }, (_, k) =>
                client.createDevice(`k-${String(i + k).padStart(4, '0')}`),
              ),
            );
          }
          await client.close();

          served = await startServe(store);
          const admin = `http://127.0.0.1:${served.adminPort}/health`;
          await until('the read model to hold the fleet', async () => {
            const body = (await (await fetch(admin)).json()) as { readModel?: { twins?: number } };
            return body.readModel?.twins === DEVICES ? true : undefined;
          });
          const gateway = (s: Served): string[] => ['--gateway', `http://127.0.0.1:${s.gatewayPort}`];
          // GET /jobs/v2/{id} straight over HTTP (a CLI call per poll is too slow to catch the job midway)
          const { key } = JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string };
          const token = signServiceSas('localhost', 'iothubowner', key, Math.floor(Date.now() / 1000) + 3600);
          const call = async (s: Served, method: string, path: string, json?: object): Promise<Job> => {
            const { status, body } = await new Promise<{ status: number | undefined; body: string }>(
              (resolve, reject) => {
                const headers = {
                  authorization: token,
                  ...(json === undefined ? {} : { 'content-type': 'application/json' }),
                };
                const req = request(
                  `http://127.0.0.1:${s.gatewayPort}${path}?api-version=2021-04-12`,
                  { method, headers, agent: false },
                  (res) => {
                    let text = '';
                    res.setEncoding('utf8').on('data', (c: string) => (text += c));
                    res.on('end', () => resolve({ status: res.statusCode, body: text }));
                  },
                );
                req.on('error', reject);
                req.end(json === undefined ? undefined : JSON.stringify(json));
              },
            );
            expect(status, body).toBe(200);
            return JSON.parse(body) as Job;
          };
          const job = (s: Served): Promise<Job> => call(s, 'GET', '/jobs/v2/fw-kill');
          const created = await cli([
            'job',
            'create',
            'fw-kill',
            '{"properties":{"desired":{"fw":"2.0"}}}',
            '--query',
            "STARTSWITH(deviceId, 'k-')",
            '--json',
            ...gateway(served),
            ...store,
          ]);
          expect(created.err).toBe('');
          expect(['queued', 'running']).toContain((JSON.parse(created.out) as Job).status);
          const first = served;
          const seen: string[] = [];
          const midway = await until(
            'the job in the middle of its devices',
            async () => {
              const j = await job(first);
              seen.push(`${Date.now()} ${j.status} ${j.deviceJobStatistics.succeededCount}`);
              if (j.status === 'completed')
                throw new Error(`the job completed before serve could be killed: raise DEVICES ${seen.join(', ')}`);
              return j.deviceJobStatistics.succeededCount > 0 ? j : undefined;
            },
            60_000,
            2,
          );
          first.child.kill('SIGKILL');
          await first.exited;
          expect(midway.deviceJobStatistics.deviceCount).toBe(DEVICES);
          expect(midway.deviceJobStatistics.succeededCount).toBeLessThan(DEVICES);

          served = await startServe(store);
          const second = served;
          const done = await until('the resumed job to complete', async () => {
            const j = await job(second);
            return j.status === 'completed' || j.status === 'failed' ? j : undefined;
          });
          expect(done.status).toBe('completed');
          const listed = await cli(['job', 'list', ...gateway(second), ...store]);
          expect(listed.out).toBe(
            `fw-kill  completed  devices ${DEVICES}: succeeded ${DEVICES}, failed 0, running 0, pending 0  created ${String((done as unknown as Record<string, unknown>)['createdTime'])}  STARTSWITH(deviceId, 'k-')\n`,
          );
          expect(done.deviceJobStatistics).toEqual({
            deviceCount: DEVICES,
            succeededCount: DEVICES,
            failedCount: 0,
            runningCount: 0,
            pendingCount: 0,
          });
          second.child.kill('SIGTERM');
          expect(await second.exited).toBe(0);
          served = undefined;

          // every twin got the job's write exactly once
          const reopened = openFleetLog();
          try {
            const twins = await listTwins(reopened);
            expect(twins).toHaveLength(DEVICES);
            const versions = new Map<string, number>();
            for (const t of twins) {
              expect(t.properties.desired['fw']).toBe('2.0');
              const v = t.properties.desired['$version'];
              versions.set(String(v), (versions.get(String(v)) ?? 0) + 1);
            }
            expect(Object.fromEntries(versions)).toEqual({ '2': DEVICES });
          } finally {
            await reopened.close();
            await log.close();
          }
        } finally {
          if (served !== undefined && served.child.exitCode === null) served.child.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
