/**
 * docker/Dockerfile without a Docker engine: a build stage that compiles and packs the workspace,
 * and a slim runtime stage with production dependencies only, a non-root user, a health check and
 * a data volume. That the runtime's command works is shown on the same packed install by
 * packInstall.int.spec.ts.
 */
import { describe, expect, it } from 'vitest';
import { execForm, parseDockerfile, stageEnv } from './dockerfile.ts';

describe('docker/Dockerfile', () => {
  const stages = parseDockerfile();
  const build = stages.find((s) => s.name === 'build')!;
  const runtime = stages.at(-1)!;
  const runs = (s: typeof build): string[] => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

  it('has a build stage on the full Node 20 image and a last stage, runtime, on the slim one', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    expect(build.from).toBe('node:20-bookworm');
    expect(runtime.from).toBe('node:20-bookworm-slim');
  });

  it('builds, packs, then installs the packed tarballs with production dependencies only', () => {
    const script = runs(build).join(' && ');
    expect(script).toMatch(
      /npm ci\b.*npm run build\b.*npm pack --workspaces --pack-destination \/packs\b.*npm install --omit=dev\b[^&]*\/packs\/\*\.tgz/,
    );
  });

  it('runtime: only the installed packages from the build stage, no install, no sources, no compiler', () => {
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD');
    expect(copies.map((c) => c.args)).toEqual(['--from=build /opt/twinlog /opt/twinlog']);
    for (const run of runs(runtime)) expect(run).not.toMatch(/\bnpm\b|\bapt-get\b|\btsx\b|\bnode-gyp\b/);
  });

  it('runtime: a non-root user, a volume for the data folder, a health check on /health, twinlog serve', () => {
    const env = stageEnv(runtime);
    expect(env.get('TWINLOG_DATA')).toBe('/data');
    expect(env.get('TWINLOG_HOST')).toBe('0.0.0.0');
    expect(env.get('NODE_ENV')).toBe('production');
    expect(env.get('PATH')).toMatch(/^\/opt\/twinlog\/node_modules\/\.bin:/);
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
    expect(execForm(runtime, 'VOLUME')).toEqual([env.get('TWINLOG_DATA')]);
    const health = runtime.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
    expect(health).toHaveLength(1);
    expect(health[0]!.args).toMatch(/^--interval=\S+ .*CMD \[.*\/health/);
    expect(execForm(runtime, 'ENTRYPOINT')).toEqual(['twinlog']);
    expect(execForm(runtime, 'CMD')).toEqual(['serve']);
  });
});
