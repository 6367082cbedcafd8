/**
 * twinlog as a user gets it: every package built (`npm run build`) and packed (`npm pack`), the
 * tarballs installed into a fresh project with `npm install --omit=dev`, then used from there —
 * plain Node ESM, a TypeScript file checked with `module: node16`, and the installed `twinlog`
 * running the container's command (docker/Dockerfile's runtime stage, read by dockerfile.ts).
 *
 * better-sqlite3 has no compiler-free path without a prebuilt binary, and none can be downloaded
 * here: its install script (prebuild-install) is given, through its documented
 * `npm_config_<package>_local_prebuilds` setting, a prebuilt archive of the same version and Node
 * ABI made from the repository's own compiled copy, as a user gets one from the project's releases.
 * `TWINLOG_INSTALL_FROM_SOURCE=1` skips that, and the install compiles it (about 2 minutes on 2 cores).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signServiceSas } from '@twinlog/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execForm, parseDockerfile, stageEnv } from './dockerfile.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const PACKAGES = readdirSync(join(ROOT, 'packages')).filter((p) =>
  existsSync(join(ROOT, 'packages', p, 'package.json')),
);
const FROM_SOURCE = process.env['TWINLOG_INSTALL_FROM_SOURCE'] === '1';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The environment of a user's shell: nothing from the npm script or the test run that would change
 * how npm or Node behave (no `--conditions=source`, no workspace settings, no twinlog settings).
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  for (const [k, v] of Object.entries(process.env)) {
    if (
      k.startsWith('TWINLOG_') ||
      k === 'KAFKA_BROKERS' ||
      k === 'NODE_OPTIONS' ||
      k.startsWith('VITEST') ||
      k === 'NODE_ENV'
    )
      continue;
    if (k.toLowerCase().startsWith('npm_') && !keep.has(k.toLowerCase())) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number },
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? userEnv(), timeout: options.timeout ?? 120_000, maxBuffer: 32 << 20 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

async function ok(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number },
): Promise<string> {
  const r = await run(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const moduleVersion = (name: string): string =>
  (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

describe('the packed packages, installed with --omit=dev into a fresh project', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-install-'));
  const app = join(dir, 'app');
  const timings: Record<string, number> = {};
  let serve: ChildProcess | undefined;

  beforeAll(async () => {
    const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      try {
        return await f();
      } finally {
        timings[name] = Math.round(performance.now() - start);
      }
    };
    // compile (incremental: quick when dist/ is up to date), then pack every workspace package
    await timed('build', () => ok('npm', ['run', 'build'], { cwd: ROOT, env: userEnv(), timeout: 180_000 }));
    mkdirSync(join(dir, 'packs'));
    const packed = await timed('pack', () =>
      ok('npm', ['pack', '--workspaces', '--pack-destination', join(dir, 'packs'), '--json'], { cwd: ROOT }),
    );
    const tarballs = (JSON.parse(packed) as { name: string; filename: string }[]).map((p) => ({
      name: p.name,
      file: join(dir, 'packs', p.filename),
    }));
    expect(tarballs.map((t) => t.name).sort()).toEqual(PACKAGES.map((p) => `@twinlog/${p}`).sort());

    // better-sqlite3's prebuilt archive, named as prebuild-install looks for it
    const prebuilds = join(dir, 'prebuilds');
    const sqlite = moduleVersion('better-sqlite3');
    if (!FROM_SOURCE) {
      mkdirSync(join(dir, 'prebuild', 'build', 'Release'), { recursive: true });
      writeFileSync(
        join(dir, 'prebuild', 'build', 'Release', 'better_sqlite3.node'),
        readFileSync(join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')),
      );
      mkdirSync(prebuilds);
      const archive = `better-sqlite3-v${sqlite}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
      await ok('tar', ['-czf', join(prebuilds, archive), '-C', join(dir, 'prebuild'), 'build'], { cwd: dir });
    }

    // the user's project: the tarballs, and the type packages a TypeScript project of theirs has
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'twinlog-user', version: '1.0.0', private: true, type: 'module' }, null, 2),
    );
    // better-sqlite3's types come with @twinlog/log-embedded and @twinlog/fleet, whose declarations use them
    const types = [`@types/node@${moduleVersion('@types/node')}`];
    await timed('install', () =>
      ok(
        'npm',
        [
          'install',
          '--omit=dev',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          ...tarballs.map((t) => t.file),
          ...types,
        ],
        {
          cwd: app,
          env: userEnv(FROM_SOURCE ? {} : { npm_config_better_sqlite3_local_prebuilds: prebuilds }),
          timeout: 240_000,
        },
      ),
    );
    expect(existsSync(join(app, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'))).toBe(
      true,
    );
  }, 300_000);

  afterAll(() => {
    if (serve !== undefined && serve.exitCode === null) serve.kill('SIGKILL');
    console.log(
      `install test: ${Object.entries(timings)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ')}`,
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs what was packed, without dev dependencies or sources of tests', () => {
    const installed = readdirSync(join(app, 'node_modules', '@twinlog')).sort();
    expect(installed).toEqual([...PACKAGES].sort());
    for (const dev of ['tsx', 'typescript', 'vitest', 'fast-check', 'azure-iothub'])
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    for (const p of installed) {
      const root = join(app, 'node_modules', '@twinlog', p);
      expect(existsSync(join(root, 'dist', 'index.js')), p).toBe(true);
      expect(existsSync(join(root, 'dist', 'index.d.ts')), p).toBe(true);
      expect(existsSync(join(root, 'LICENSE')), p).toBe(true);
      const files = readdirSync(join(root, 'src'), { recursive: true }).map(String);
      expect(
        files.filter((f) => /\.spec\.ts$|\.fixture\.ts$/.test(f)),
        p,
      ).toEqual([]);
    }
  });

  it('works from plain Node ESM: an embedded log, the projector and a client', async () => {
    writeFileSync(
      join(app, 'use.mjs'),
      `import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient } from '@twinlog/client';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, history, startProjector } from '@twinlog/projector';

const log = createEmbeddedLog({ path: join(mkdtempSync(join(tmpdir(), 'twinlog-use-')), 'twinlog.db') });
await ensureTwinTopics(log);
const projector = await startProjector({ log, physicalNow: () => Date.now(), workers: 1 });
const client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'user-app' });
await client.createDevice('pump-1', { wait: true });
await client.mergeDesired('pump-1', { rpm: 1200 }, { wait: true });
const twin = await client.getTwin('pump-1');
const events = await history({ log, deviceId: 'pump-1' });
console.log(JSON.stringify({ rpm: twin.properties.desired.rpm, version: twin.properties.desired.$version, events: events.length }));
await client.close();
await projector.stop();
await log.close();
`,
    );
    const out = await ok(process.execPath, ['use.mjs'], { cwd: app });
    expect(JSON.parse(out)).toEqual({ rpm: 1200, version: 2, events: 2 });
  });

  it('type-checks from TypeScript with module node16 (declarations included: no skipLibCheck)', async () => {
    writeFileSync(
      join(app, 'use.ts'),
      `import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { startProjector, type Projector } from '@twinlog/projector';

const log = createEmbeddedLog({ path: 'twinlog.db' });
const projector: Projector = await startProjector({ log, physicalNow: () => Date.now() });
const client: TwinClient = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'user-app' });
const version: number = (await client.getTwin('pump-1')).properties.desired.$version;
// @ts-expect-error internals are not exported
import type {} from '@twinlog/client/internal/anything';
export { version, projector };
`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: { module: 'node16', target: 'es2022', strict: true, noEmit: true, types: ['node'] },
          files: ['use.ts'],
        },
        null,
        2,
      ),
    );
    const tsc = await run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      { cwd: app },
    );
    expect(tsc, tsc.stdout).toMatchObject({ code: 0, stdout: '' });
  });

  it(
    "runs the installed twinlog: --version, and the container's command (serve) until SIGTERM",
    { timeout: 120_000 },
    async () => {
      const bin = join(app, 'node_modules', '.bin', 'twinlog');
      const version = (
        JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { version: string }
      ).version;
      expect(await run(bin, ['--version'], { cwd: app })).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });

      // The image's runtime stage, with /opt/twinlog being this project and /data a temporary folder;
      // ports 0 (as `docker run -e TWINLOG_PORT=0 …` would) so that parallel runs do not collide.
      const runtime = parseDockerfile().at(-1)!;
      const data = join(dir, 'data');
      mkdirSync(data);
      const imageEnv = Object.fromEntries(
        [...stageEnv(runtime)].map(([k, v]) => [
          k,
          v
            .replaceAll('/opt/twinlog', app)
            .replace('$PATH', process.env['PATH'] ?? '')
            .replace(/^\/data$/, data),
        ]),
      );
      const env = userEnv({ ...imageEnv, TWINLOG_PORT: '0', TWINLOG_ADMIN_PORT: '0' });
      const [command, ...args] = [...execForm(runtime, 'ENTRYPOINT')!, ...execForm(runtime, 'CMD')!];
      expect([command, ...args]).toEqual(['twinlog', 'serve']);
      const child = spawn(command!, args, { cwd: data, env, stdio: ['ignore', 'pipe', 'pipe'] });
      serve = child;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const serving = await new Promise<Record<string, unknown>>((resolve, reject) => {
        let buffer = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          buffer += c;
          for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
            const entry = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
            buffer = buffer.slice(nl + 1);
            if (entry['msg'] === 'serving') resolve(entry);
          }
        });
        void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      const health = await fetch(`http://127.0.0.1:${String(serving['adminPort'])}/health`);
      expect(health.status).toBe(200);

      // a device created and its twin patched with the installed CLI, next to the running serve
      const cli = (...argv: string[]): Promise<Run> => run('twinlog', argv, { cwd: data, env });
      expect(await cli('device', 'create', 'pump-2')).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^created pump-2 /) as unknown,
      });
      const patched = await cli('twin', 'patch', 'pump-2', '{"properties":{"desired":{"rpm":900}}}');
      expect(patched, patched.stderr).toMatchObject({ code: 0 });
      expect(patched.stdout).toMatch(/"rpm": 900/);

      // and the twin read back over the IoT Hub REST API, signed with the generated service policy
      const { key } = JSON.parse(readFileSync(join(data, 'service-policy.json'), 'utf8')) as { key: string };
      const twin = await fetch(
        `http://127.0.0.1:${String(serving['gatewayPort'])}/twins/pump-2?api-version=2021-04-12`,
        {
          headers: {
            authorization: signServiceSas('localhost', 'iothubowner', key, Math.floor(Date.now() / 1000) + 600),
          },
        },
      );
      expect(twin.status).toBe(200);
      expect(await twin.json()).toMatchObject({
        deviceId: 'pump-2',
        properties: { desired: { rpm: 900, $version: 2 } },
      });

      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
    },
  );

  it('`npx twinlog` in the repository runs the same compiled bin', async () => {
    expect(await run('npx', ['--no-install', 'twinlog', '--version'], { cwd: ROOT })).toMatchObject({
      code: 0,
      stdout: '0.1.0\n',
    });
  });
});
