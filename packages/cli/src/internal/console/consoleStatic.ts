/**
 * The console's static files: plain ES modules, CSS and one HTML page, shipped as they are in
 * `packages/cli/console/` (no bundler, no CDN). The folder sits three levels above this file both
 * in `src/internal/console/` and in `dist/internal/console/`.
 */
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_ASSETS = fileURLToPath(new URL('../../../console/', import.meta.url));

/** Same-origin scripts, styles and connections only; no inline script or style, no framing. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headers every `/ui` response carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Answer `GET /ui/<name>` from the assets folder; `false` when there is no such asset. */
export async function serveAsset(name: string, res: ServerResponse, head: boolean): Promise<boolean> {
  // flat names and one level of folders, nothing that could climb out of the folder
  if (!/^(?:[a-z0-9-]+\/)?[a-z0-9][a-z0-9.-]*$/i.test(name) || name.includes('..')) return false;
  const type = TYPES[extname(name)];
  if (type === undefined) return false;
  let body: Buffer;
  try {
    body = await readFile(join(CONSOLE_ASSETS, name));
  } catch {
    return false;
  }
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-cache',
  });
  res.end(head ? undefined : body);
  return true;
}
