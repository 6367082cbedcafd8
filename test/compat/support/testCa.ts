/**
 * A throwaway certificate authority for the compatibility suite and the MQTT benchmarks, made with
 * the `openssl` CLI in a temp dir (removed at once: everything is returned as PEM text): a CA
 * certificate and a `localhost` server certificate it signed (SAN `DNS:localhost`,
 * `IP:127.0.0.1`). The SDKs are given the CA (`client.setOptions({ ca })`), never told to skip
 * verification. Keys are RSA 2048 by default, ECDSA P-256 with `{ key: 'ec' }` (the benchmarks').
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  /** The CA certificate (PEM): what clients trust. */
  readonly ca: string;
  /** The server's key and certificate (PEM). */
  readonly key: string;
  readonly cert: string;
}

export function createTestCa({ key: keyType = 'rsa' }: { key?: 'rsa' | 'ec' } = {}): TestCa {
  const newKey =
    keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-ca-'));
  const at = (f: string): string => join(dir, f);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    ...newKey,
    '-nodes',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=twinlog test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  ssl('req', ...newKey, '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(
    at('server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.pem'),
    '-days',
    '2',
    '-extfile',
    at('server.ext'),
  );
  const ca = readFileSync(at('ca.pem'), 'utf8');
  const key = readFileSync(at('server.key'), 'utf8');
  const cert = readFileSync(at('server.pem'), 'utf8');
  rmSync(dir, { recursive: true, force: true });
  return { ca, key, cert };
}
