/**
 * The REST routes of the IoT Plug and Play digital twin API (docs/iot-hub.md, "IoT Plug and Play"),
 * as the `DigitalTwinClient` of `azure-iothub` calls them (api-version 2021-04-12):
 *
 * - `GET /digitaltwins/{id}`: 200, the digital twin (`internal/digitalTwin.ts`), `ETag: "<twin etag>"`.
 * - `PATCH /digitaltwins/{id}`: a JSON Patch, optional `If-Match`; it becomes **one** desired merge
 *   (a twin write like `PATCH /twins/{id}`, so devices get one desired notification) and answers
 *   202 with no body and `ETag: "<twin etag after the write>"` (the SDK accepts only 202).
 * - `POST /digitaltwins/{id}/commands/{name}` and `…/components/{c}/commands/{name}`: Plug and
 *   Play commands are direct methods, which twinlog does not deliver: 405 `MethodNotAllowed`.
 *
 * The JSON Patch is applied to the desired section as it is when the request is read, and the
 * write is conditional on that twin's etag, so no other write can slip in between: with `If-Match`
 * a concurrent write answers 412 (as IoT Hub); without it, the gateway reads again and retries
 * (a few times, then 412). A patch that changes nothing appends nothing and answers 202.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TwinlogError } from '@twinlog/core';
import type { TwinClient, WriteDecision } from '@twinlog/client';
import type { DeviceKeyStore } from './deviceKeyStore.ts';
import { digitalTwinMergePatch, renderDigitalTwin } from './digitalTwin.ts';
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf } from './idempotencyKey.ts';
import { GatewayError, sendJson } from './iotHubError.ts';
import { readJsonPatchBody } from './readJsonBody.ts';
import { header, ifMatchHeader } from './requestHeaders.ts';
import type { TwinReader } from './twinReader.ts';

/** What a digital twin route handler gets from the gateway (a subset of its request context). */
export interface DigitalTwinRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The decoded device id. */
  readonly id: string;
}

/** The three handlers (see the module comment). */
export interface DigitalTwinRoutes {
  getDigitalTwin(ctx: DigitalTwinRequest): Promise<void>;
  patchDigitalTwin(ctx: DigitalTwinRequest): Promise<void>;
  invokeCommand(ctx: DigitalTwinRequest): Promise<void>;
}

/** Reads and retries of a `PATCH` without `If-Match` whose twin changed under it. */
const UNCONDITIONAL_ATTEMPTS = 3;

/**
 * The digital twin route handlers over the gateway's twin reader, write client and device key
 * store (for the model id the device announced at its MQTT connect).
 *
 * @example
 * const dt = createDigitalTwinRoutes({ client, twins, keys, maxBodyBytes: 256 * 1024 })
 * await dt.getDigitalTwin({ req, res, id: 'dev1' })
 */
export function createDigitalTwinRoutes({
  client,
  twins,
  keys,
  maxBodyBytes,
}: {
  readonly client: TwinClient;
  readonly twins: TwinReader;
  readonly keys: DeviceKeyStore;
  readonly maxBodyBytes: number;
}): DigitalTwinRoutes {
  return {
    async getDigitalTwin({ res, id }) {
      const twin = await twins.getTwin(id);
      sendJson(res, 200, renderDigitalTwin(twin, keys.get(id)?.modelId ?? ''), { etag: `"${twin.etag}"` });
    },

    async patchDigitalTwin({ req, res, id }) {
      const body = await readJsonPatchBody(req, { maxBytes: maxBodyBytes });
      const ifMatch = ifMatchHeader(req) ?? '*';
      const idempotencyKey = idempotencyKeyOf({
        header: header(req, IDEMPOTENCY_KEY_HEADER),
        method: 'PATCH /digitaltwins',
        ifMatch,
        body,
      });
      for (let attempt = 1; ; attempt++) {
        const twin = await twins.getTwin(id);
        const merge = digitalTwinMergePatch(twin.properties.desired, twin.properties.reported, body);
        if (Object.keys(merge).length === 0 && (ifMatch === '*' || ifMatch === twin.etag)) {
          res.writeHead(202, { etag: `"${twin.etag}"`, 'content-length': '0' }).end();
          return;
        }
        // the patch was computed on this twin: the write holds only if it is still this twin
        const d: WriteDecision = await client.patchTwin(
          id,
          { desired: merge },
          {
            ifMatch: ifMatch === '*' ? twin.etag : ifMatch,
            ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
          },
        );
        if (!d.accepted && d.code === 'PRECONDITION_FAILED' && ifMatch === '*' && attempt < UNCONDITIONAL_ATTEMPTS)
          continue;
        if (!d.accepted) throw new TwinlogError(d.code, d.message, { details: { etag: d.etag } });
        const etag = d.etag ?? (await twins.getTwin(id)).etag;
        const headers: Record<string, string> = { etag: `"${etag}"`, 'content-length': '0' };
        if (d.duplicateOf !== undefined)
          headers['x-twinlog-duplicate-of'] = `${d.duplicateOf.writer}/${d.duplicateOf.seq}`;
        res.writeHead(202, headers).end();
        return;
      }
    },

    async invokeCommand() {
      throw new GatewayError(
        'METHOD_NOT_ALLOWED',
        'Plug and Play commands are direct methods, which twinlog does not support (docs/iot-hub.md): use writable properties (updateDigitalTwin) instead',
      );
    },
  };
}
