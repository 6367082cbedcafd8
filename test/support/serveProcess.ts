/**
 * `twinlog serve` as a real process for tests: started from the CLI's sources
 * (`bin/twinlog-dev.mjs`, no build needed), its JSON log lines collected, resolved once it logs
 * `serving` with its ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
/** The CLI from its TypeScript sources (no build needed); the compiled bin is tested in test/install/. */
export const BIN = join(ROOT, 'packages', 'cli', 'bin', 'twinlog-dev.mjs');

/** The environment without anything that would point the CLI elsewhere. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TWINLOG_') && k !== 'KAFKA_BROKERS') env[k] = v;
  return { ...env, ...extra };
}

export interface Served {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly gatewayPort: number;
  readonly adminPort: number;
  readonly mqttPort: number | undefined;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/** Starts `twinlog serve` (ports 0) and resolves once it logs `serving` (rejects if it exits first). */
export function startServe(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Served> {
  return new Promise((resolve, reject) => {
    // SERVE_NODE_ARGS: extra Node flags for the serve process (e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile it)
    const nodeArgs = (process.env['SERVE_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'serve', '--port', '0', '--admin-port', '0', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    let stderr = '';
    let buffer = '';
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      buffer += c;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const entry = JSON.parse(line) as Record<string, unknown>; // every line is one JSON object
        lines.push(entry);
        if (entry['msg'] === 'serving') {
          resolve({
            child,
            lines,
            gatewayPort: entry['gatewayPort'] as number,
            adminPort: entry['adminPort'] as number,
            mqttPort: entry['mqttPort'] as number | undefined,
            exited,
          });
        }
      }
    });
    void exited.then((code) =>
      reject(new Error(`serve exited with ${code} before serving: ${stderr}\n${JSON.stringify(lines)}`)),
    );
  });
}
