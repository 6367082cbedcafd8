/**
 * The CLI commands that act through a running `twinlog serve` (`config`, `job`, `module`) send
 * their requests to its REST gateway with this: the gateway is `--gateway <url>`, by default the
 * configured `host` and `port` (`https` when `serve` has a certificate, which is then trusted);
 * requests are signed with the service policy `serve` uses (`TWINLOG_POLICY_KEY`, or
 * `<data>/service-policy.json`), and a refusal becomes one line with IoT Hub's error name.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CliError } from './CliError.ts';
import type { CliConfig } from './resolveConfig.ts';

const API_VERSION = '2021-04-12';

export interface GatewayOptions {
  readonly gateway?: string;
}

/** The gateway's base URL and whether to trust serve's certificate. */
function gatewayOf(config: CliConfig, opts: GatewayOptions): URL {
  const given = opts.gateway;
  if (given !== undefined) {
    try {
      return new URL(given);
    } catch {
      throw new CliError(`--gateway must be a URL such as http://127.0.0.1:8080, got '${given}'`);
    }
  }
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const scheme = config.tlsCert !== undefined && config.tlsKey !== undefined ? 'https' : 'http';
  return new URL(`${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.port}`);
}

export interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** The response headers (paging: `x-ms-continuation`). */
  readonly headers: IncomingMessage['headers'];
}

/** One signed REST call to the gateway; a refusal becomes a one-line error (exit code 1). */
export async function call(
  config: CliConfig,
  opts: GatewayOptions,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const { servicePolicy } = await import('./serve.ts');
  const { signServiceSas } = await import('@twinlog/gateway');
  const policy = servicePolicy(config);
  const base = gatewayOf(config, opts);
  const url = new URL(`${path}${path.includes('?') ? '&' : '?'}api-version=${API_VERSION}`, base);
  const token = signServiceSas(config.hubName, policy.name, policy.key, Math.floor(Date.now() / 1000) + 300);
  const text = body === undefined ? undefined : JSON.stringify(body);
  const https = url.protocol === 'https:';
  const answer = await new Promise<{ res: IncomingMessage; data: string }>((resolvePromise, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method,
        headers: {
          authorization: token,
          ...(text === undefined
            ? {}
            : { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) }),
          ...headers,
        },
        ...(https && config.tlsCert !== undefined
          ? { ca: readFileSync(config.tlsCert), servername: config.hubName }
          : {}),
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolvePromise({ res, data }));
        res.on('error', reject);
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new CliError(
          `cannot reach the gateway at ${base.origin} (${e.code ?? e.message}): is \`twinlog serve\` running? (--gateway <url> to name another)`,
          1,
        ),
      ),
    );
    req.end(text);
  });
  const status = answer.res.statusCode ?? 0;
  let parsed: unknown = undefined;
  if (answer.data !== '') {
    try {
      parsed = JSON.parse(answer.data) as unknown;
    } catch {
      parsed = answer.data;
    }
  }
  if (status >= 300) {
    // IoT Hub's error body: {"Message":"ErrorCode:<Name>;<text>", …}
    const message = (parsed as { Message?: unknown } | undefined)?.Message;
    const m = typeof message === 'string' ? /^ErrorCode:([^;]*);(.*)$/s.exec(message) : null;
    throw new CliError(m === null ? `the gateway answered ${status}` : `${m[1]}: ${m[2]} (${status})`, 1);
  }
  return { status, body: parsed, headers: answer.res.headers };
}
