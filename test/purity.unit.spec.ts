/**
 * packages/core is pure (CONTRIBUTING.md; docs/architecture.md, "Packages"): no I/O imports, no clocks, randomness or
 * environment. Its tsconfig has `types: []`, so Node globals do not even type-check there; this test
 * also catches what ES itself offers (Date.now, Math.random) and imports of I/O packages.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const FORBIDDEN: [RegExp, string][] = [
  [/from\s+['"]node:/, 'node:* import'],
  [/from\s+['"](fs|path|os|crypto|child_process|net|http|https|worker_threads)['"]/, 'Node built-in import'],
  [/from\s+['"](kafkajs|@msgpack\/msgpack|better-sqlite3|testcontainers)['"]/, 'I/O or codec package import'],
  [/\brequire\s*\(/, 'require()'],
  [/\bimport\s*\(/, 'dynamic import'],
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew\s+Date\s*\(\s*\)/, 'new Date() without an argument'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\bprocess\./, 'process'],
  [/\b(performance|crypto)\.\w/, 'performance/crypto globals'],
  [/\b(setTimeout|setInterval|setImmediate|fetch)\s*\(/, 'timers or fetch'],
];

/** The violations in one source text (comments stripped). */
export function findImpurities(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  return FORBIDDEN.filter(([re]) => re.test(code)).map(([, what]) => what);
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.spec.ts') ? [p] : [];
  });
}

const CORE = join(import.meta.dirname, '..', 'packages', 'core');

describe('packages/core purity', () => {
  it('the detector catches each kind of violation', () => {
    expect(findImpurities("import { readFileSync } from 'node:fs';")).toEqual(['node:* import']);
    expect(findImpurities('const t = Date.now();')).toEqual(['Date.now()']);
    expect(findImpurities('const r = Math.random();')).toEqual(['Math.random()']);
    expect(findImpurities('const e = process.env.X;')).toEqual(['process']);
    expect(findImpurities("import { Kafka } from 'kafkajs';")).toEqual(['I/O or codec package import']);
    expect(findImpurities('const d = new Date();')).toEqual(['new Date() without an argument']);
    expect(findImpurities('// Date.now() in a comment is fine\nconst d = new Date(wall);')).toEqual([]);
  });

  it('no source file of packages/core imports I/O or reads clocks, randomness or the environment', () => {
    const files = sources(join(CORE, 'src'));
    expect(files.length).toBeGreaterThan(10);
    const violations = files.flatMap((f) => findImpurities(readFileSync(f, 'utf8')).map((v) => `${f}: ${v}`));
    expect(violations).toEqual([]);
  });

  it('core has no runtime dependencies and no Node types', () => {
    const pkg = JSON.parse(readFileSync(join(CORE, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg['dependencies']).toBeUndefined();
    const tsconfig = JSON.parse(readFileSync(join(CORE, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { types: unknown };
    };
    expect(tsconfig.compilerOptions.types).toEqual([]);
  });
});
