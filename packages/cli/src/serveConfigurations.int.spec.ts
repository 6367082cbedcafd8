/**
 * `twinlog serve` runs the automatic configurations (docs/iot-hub.md, "Automatic configurations"):
 * a configuration put with `twinlog config` reaches a twin once its tags match, within seconds,
 * and is withdrawn when the tags stop matching; on the embedded log and on Kafka.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServe } from '../../../test/support/serveProcess.ts';
import { runCli } from './runCli.ts';

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

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const kind of ['embedded', 'kafka'] as const) {
  describe(`serve with automatic configurations on the ${kind} log`, () => {
    it(
      'applies a configuration to a twin whose tags match, and withdraws it when they stop matching',
      { timeout: 120_000 },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), 'twinlog-serve-configs-'));
        const store =
          kind === 'embedded'
            ? ['--data', dir]
            : [
                '--kafka',
                process.env['KAFKA_BROKERS']!,
                '--topic-prefix',
                `cfg-${randomUUID().slice(0, 8)}.`,
                '--data',
                dir,
                '--partitions',
                '2',
              ];
        if (kind === 'kafka') expect(process.env['KAFKA_BROKERS'], 'the int tier provides KAFKA_BROKERS').toBeTruthy();
        const served = await startServe(store);
        try {
          const gateway = ['--gateway', `http://127.0.0.1:${served.gatewayPort}`];
          const twin = async (): Promise<{ properties: { desired: Record<string, unknown> } }> => {
            const r = await cli(['twin', 'get', 'th-1', ...store]);
            expect(r.err).toBe('');
            return JSON.parse(r.out) as { properties: { desired: Record<string, unknown> } };
          };
          const put = await cli([
            'config',
            'put',
            'eco',
            '--target',
            "tags.site = 'b'",
            '--priority',
            '3',
            '--content',
            '{"properties.desired.mode":"eco"}',
            ...gateway,
            ...store,
          ]);
          expect(put.err).toBe('');
          expect(put.code).toBe(0);
          expect((await cli(['device', 'create', 'th-1', ...store])).code).toBe(0);
          expect((await cli(['twin', 'patch', 'th-1', '{"tags":{"site":"b"}}', ...store])).code).toBe(0);
          const started = Date.now();
          await until('the configuration content on th-1', async () =>
            (await twin()).properties.desired['mode'] === 'eco' ? true : undefined,
          );
          expect(Date.now() - started).toBeLessThan(15_000); // each probe is a CLI twin get (on Kafka a new client each time)
          await until('appliedCount 1', async () => {
            const got = await cli(['config', 'get', 'eco', '--json', ...gateway, ...store]);
            return (JSON.parse(got.out) as { systemMetrics: { results: { appliedCount: number } } }).systemMetrics
              .results.appliedCount === 1
              ? true
              : undefined;
          });

          expect((await cli(['twin', 'patch', 'th-1', '{"tags":{"site":"c"}}', ...store])).code).toBe(0);
          await until('the content withdrawn from th-1', async () =>
            (await twin()).properties.desired['mode'] === undefined ? true : undefined,
          );
          expect((await cli(['config', 'delete', 'eco', ...gateway, ...store])).code).toBe(0);
          served.child.kill('SIGTERM');
          expect(await served.exited).toBe(0);
        } finally {
          if (served.child.exitCode === null) served.child.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
}
