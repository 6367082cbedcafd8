/**
 * The public surface: the export whitelist, purity (no I/O, clock, randomness or environment, as
 * for core), and every JSDoc `@example` and the README synopsis executed: a line `expr //=> json`
 * (or `//=> json` on the line after `expr`) asserts that `expr` deep-equals the JSON.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from './index.ts';

const SRC = import.meta.dirname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.spec.ts') ? [p] : [];
  });
}

/** The JS code of every `@example` in a source text. */
function examples(source: string): string[] {
  const out: string[] = [];
  for (const block of source.matchAll(/\/\*\*([\s\S]*?)\*\//g)) {
    const lines = block[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, ''));
    const at = lines.findIndex((l) => l.startsWith('@example'));
    if (at < 0) continue;
    const end = lines.findIndex((l, i) => i > at && l.startsWith('@'));
    out.push(lines.slice(at + 1, end < 0 ? undefined : end).join('\n'));
  }
  return out;
}

/** Turn `expr //=> json` lines into checks; run the code with the package's exports in scope. */
function run(code: string): number {
  const lines = code.split('\n');
  const body: string[] = [];
  let checks = 0;
  for (const line of lines) {
    const m = /^(.*?)\s*\/\/=>\s*(.*)$/.exec(line);
    if (m === null) {
      body.push(line);
      continue;
    }
    checks++;
    const [, expr, expected] = m;
    if (expr!.trim() === '') {
      let i = body.length - 1;
      while (i >= 0 && body[i]!.trim() === '') i--;
      body[i] = `__check(${body[i]!.trim().replace(/;$/, '')}, ${JSON.stringify(expected)})`;
    } else {
      body.push(`__check(${expr}, ${JSON.stringify(expected)})`);
    }
  }
  const check = (actual: unknown, expected: string): void => {
    if (expected.trim() === 'undefined') expect(actual).toBeUndefined();
    else expect(JSON.parse(JSON.stringify(actual))).toEqual(JSON.parse(expected));
  };
  const names = Object.keys(api);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- runs the README's query examples
  new Function(...names, '__check', body.join('\n'))(...names.map((n) => (api as Record<string, unknown>)[n]), check);
  return checks;
}

describe('@twinlog/query public surface', () => {
  it('exports exactly the whitelist', () => {
    expect(Object.keys(api).sort()).toEqual([
      'DEFAULT_PAGE_SIZE',
      'MAX_EXPRESSION_DEPTH',
      'MAX_NESTING',
      'MAX_PAGE_SIZE',
      'MAX_QUERY_LENGTH',
      'compileWhere',
      'evaluate',
      'formatQuery',
      'paginate',
      'parseQuery',
      'referencedPaths',
      'safeParseQuery',
    ]);
    const pkg = JSON.parse(readFileSync(join(SRC, '..', 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    expect(pkg.exports['./internal/*']).toBeNull();
  });

  it('is pure: no I/O imports, clocks, randomness or environment outside testing/', () => {
    const forbidden = [
      /from\s+['"]node:/,
      /\bDate\.now\s*\(/,
      /\bnew\s+Date\s*\(\s*\)/,
      /\bMath\.random\s*\(/,
      /\bprocess\./,
      /\brequire\s*\(/,
      /\bimport\s*\(/,
    ];
    const files = sources(SRC).filter((f) => !f.includes(`${join(SRC, 'testing')}`));
    expect(files.length).toBeGreaterThan(8);
    for (const f of files) {
      const code = readFileSync(f, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/(^|[^:])\/\/.*$/gm, '$1');
      for (const re of forbidden) expect(`${f}: ${re.test(code)}`).toBe(`${f}: false`);
    }
  });

  const files = sources(SRC).filter((f) => examples(readFileSync(f, 'utf8')).length > 0);
  it.each(files.map((f) => [f.slice(SRC.length + 1), f]))('runs the @examples of %s', (_, file) => {
    let checks = 0;
    for (const code of examples(readFileSync(file, 'utf8'))) checks += run(code);
    expect(checks).toBeGreaterThan(0);
  });

  it('every exported function has an @example', () => {
    const documented = new Set(
      sources(SRC).flatMap((f) =>
        [...readFileSync(f, 'utf8').matchAll(/@example[\s\S]*?\*\/\s*export function (\w+)/g)].map((m) => m[1]!),
      ),
    );
    for (const [name, value] of Object.entries(api))
      if (typeof value === 'function') expect(documented).toContain(name);
  });

  it('runs the README synopsis', () => {
    const readme = readFileSync(join(SRC, '..', 'README.md'), 'utf8');
    const block = /```js\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    expect(run(block!)).toBeGreaterThan(3);
  });
});
