/**
 * `twinlog bench <name>`: runs the repository's `npm run bench:<name>` script, streams its output,
 * and ends with the figures and ratios of its closing `RESULT {...}` line. A benchmark whose script
 * does not exist (yet) is an error, not a silent success.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from './CliError.ts';
import type { CliIo } from './commands.ts';

export const BENCHMARKS = ['fold', 'pipeline', 'query', 'gateway', 'floor', 'state'] as const;

/** The repository root (where the root package.json with the `bench:*` scripts is). */
export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..', '..');

export function benchScripts(root = REPO_ROOT): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  return Object.fromEntries(Object.entries(pkg.scripts ?? {}).filter(([k]) => k.startsWith('bench:')));
}

/** The `RESULT {...}` line of a benchmark's output, parsed (undefined when none). */
export function parseResultLine(output: string): Record<string, unknown> | undefined {
  const lines = output.split('\n').filter((l) => l.startsWith('RESULT '));
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(last.slice('RESULT '.length));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `figures: a 1,234/s, …` and `ratios: x_vs_y 0.42, …` lines. */
export function summarizeResult(result: Record<string, unknown>): string[] {
  const ratios = Object.entries(result).filter(([k]) => k.includes('_vs_'));
  const figures = Object.entries(result).filter(([k]) => !k.includes('_vs_'));
  const show = (v: unknown): string =>
    typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 3 }) : JSON.stringify(v);
  return [
    `figures: ${figures.map(([k, v]) => `${k} ${show(v)}`).join(', ') || '(none)'}`,
    `ratios:  ${ratios.map(([k, v]) => `${k} ${show(v)}`).join(', ') || '(none)'}`,
  ];
}

export async function benchCommand(
  io: CliIo,
  name: string,
  {
    root = REPO_ROOT,
    env = process.env,
    signal,
  }: { root?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
): Promise<number> {
  if (!(BENCHMARKS as readonly string[]).includes(name))
    throw new CliError(`unknown benchmark '${name}': use one of ${BENCHMARKS.join(', ')}`);
  const scripts = benchScripts(root);
  const script = `bench:${name}`;
  if (scripts[script] === undefined) {
    const have = Object.keys(scripts).map((s) => s.slice('bench:'.length));
    throw new CliError(
      `benchmark '${name}' does not exist yet (no \`npm run ${script}\` script; available: ${have.join(', ') || 'none'})`,
      1,
    );
  }
  io.err(`twinlog bench ${name}: npm run ${script} (${scripts[script]})\n`);
  let output = '';
  const code = await new Promise<number>((resolvePromise, reject) => {
    const child = spawn(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', script], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      io.out(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => io.err(chunk));
    const onAbort = (): void => {
      child.kill('SIGINT');
    };
    signal?.addEventListener('abort', onAbort);
    child.once('error', reject);
    child.once('close', (c, s) => {
      signal?.removeEventListener('abort', onAbort);
      resolvePromise(c ?? (s === null ? 1 : 128 + 2));
    });
  });
  const result = parseResultLine(output);
  if (result === undefined) {
    io.err(`twinlog bench ${name}: no RESULT line in the output (exit code ${code})\n`);
    return code === 0 ? 1 : code;
  }
  io.out(`\n${summarizeResult(result).join('\n')}\n`);
  return code;
}
