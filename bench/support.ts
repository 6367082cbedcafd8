/** What the MQTT benchmarks (bench:gateway, bench:floor) share: latency summaries and a test CA. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Count, p50 and p99 of a latency sample (ms). */
export interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
}

/** The `p`th percentile of `xs` (nearest rank), NaN for no sample. */
export const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
export const latency = (xs: number[]): Latency => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99) });
export const fmt = (n: number | null): string => (n === null || Number.isNaN(n) ? 'n/a' : n.toFixed(1));

/** A CA and a `localhost` server certificate (ECDSA P-256), made in `dir` with the `openssl` CLI. */
export function makeCa(dir: string): { ca: string; key: string; cert: string } {
  const at = (f: string): string => join(dir, f);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '1', '-subj', '/CN=bench CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(at('ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.pem'), '-days', '1', '-extfile', at('ext'));
  return { ca: readFileSync(at('ca.pem'), 'utf8'), key: readFileSync(at('server.key'), 'utf8'), cert: readFileSync(at('server.pem'), 'utf8') };
}
