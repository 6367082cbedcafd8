/**
 * Read a REST request's JSON body with the checks that come before any JSON parsing: the content
 * type, the size (enforced while reading, and from `Content-Length` before reading), and UTF-8.
 *
 * - **Content type** (docs/iot-hub.md, "REST"): a body must come as `application/json`, with an
 *   optional `charset` that must be `utf-8` (the SDKs send `application/json; charset=utf-8`).
 *   Anything else (`text/plain`, a form, no content type at all) is refused with 400
 *   `InvalidContentEncodingOrType` (400103) before the body is read, where IoT Hub answers 400 for a
 *   bad content type or encoding. An empty body needs no content type.
 * - **Size**: a `Content-Length` above `maxBytes` is refused (413 `MessageTooLarge`) before a byte
 *   of the body is read; a chunked body is counted as it arrives and refused at the first chunk
 *   that passes the limit, so at most `maxBytes` plus one chunk is ever buffered.
 * - **UTF-8**: decoded with a fatal decoder, so invalid UTF-8 is refused (400
 *   `InvalidContentEncodingOrType`) instead of being stored as U+FFFD. A leading BOM is dropped.
 *
 * A request refused before its body was read to the end leaves bytes on the connection; the
 * gateway answers it with `Connection: close` (see `createRestGateway.ts`).
 */
import type { IncomingMessage } from 'node:http';
import { isPlainObject, type JsonObject } from '@twinlog/core';
import { GatewayError } from './iotHubError.ts';

/** Whether a `Content-Type` is JSON in UTF-8: `application/json` with no charset or `charset=utf-8`. */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [type = '', ...params] = contentType.split(';');
  if (type.trim().toLowerCase() !== 'application/json') return false;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    if (p.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const charset = p
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return false;
  }
  return true;
}

/** Whether the request announces a body (a non-zero `Content-Length`, or `Transfer-Encoding`). */
function announcesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length.trim() !== '0');
}

/** The raw body, refused as soon as it passes `maxBytes`. */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        stop();
        req.pause(); // what is left stays unread; the answer closes the connection
        reject(new GatewayError('TOO_LARGE', `The request body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error): void => {
      stop();
      reject(e);
    };
    const onClose = (): void => {
      stop();
      reject(new GatewayError('ARGUMENT_INVALID', 'The request body ended before its announced length'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * Read the body as a JSON object (`{}` when empty).
 *
 * @example
 * const body = await readJsonBody(req, { maxBytes: 256 * 1024 })
 * @throws {GatewayError} `CONTENT_INVALID` for a content type other than JSON in UTF-8 or invalid
 *   UTF-8; `TOO_LARGE` above `maxBytes`; `ARGUMENT_INVALID` for text that is not JSON, JSON that is
 *   not an object, or a body cut short.
 */
export async function readJsonBody(
  req: IncomingMessage,
  { maxBytes }: { readonly maxBytes: number },
): Promise<JsonObject> {
  const value = await readJsonValue(req, maxBytes, false);
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw new GatewayError('ARGUMENT_INVALID', 'The request body must be a JSON object');
  return value as JsonObject;
}

/**
 * Read the body as any JSON value (`undefined` when empty), with the same checks as
 * {@link readJsonBody}; `application/json-patch+json` (RFC 6902) is accepted besides
 * `application/json`. For the digital twin update, whose body is an array (docs/iot-hub.md, "IoT Plug and Play").
 *
 * @example
 * const ops = await readJsonPatchBody(req, { maxBytes: 256 * 1024 }) // [{ op: 'add', … }]
 */
export function readJsonPatchBody(req: IncomingMessage, { maxBytes }: { readonly maxBytes: number }): Promise<unknown> {
  return readJsonValue(req, maxBytes, true);
}

/** Whether a `Content-Type` is `application/json-patch+json` (charset absent or UTF-8). */
function isJsonPatchContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [type = '', ...params] = contentType.split(';');
  return (
    type.trim().toLowerCase() === 'application/json-patch+json' &&
    isJsonContentType(['application/json', ...params].join(';'))
  );
}

async function readJsonValue(req: IncomingMessage, maxBytes: number, jsonPatch: boolean): Promise<unknown> {
  if (!announcesBody(req)) return undefined;
  const length = req.headers['content-length'];
  if (length !== undefined && /^\s*[0-9]+\s*$/.test(length) && Number(length) > maxBytes) {
    throw new GatewayError('TOO_LARGE', `The request body exceeds ${maxBytes} bytes`);
  }
  const contentType = req.headers['content-type'];
  if (!isJsonContentType(contentType) && !(jsonPatch && isJsonPatchContentType(contentType))) {
    throw new GatewayError('CONTENT_INVALID', 'The request body must be application/json in UTF-8');
  }
  const bytes = await readBody(req, maxBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new GatewayError('CONTENT_INVALID', 'The request body is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError('ARGUMENT_INVALID', 'The request body is not valid JSON');
  }
}
