/**
 * `POST /devices/query` answered by the fleet read model (the gateway's `queryView` option) over
 * HTTP, on the embedded log: the same pages as the in-memory path, IoT Hub's paging headers, and
 * the freshness token in `x-twinlog-freshness` (sent back, it makes the query wait).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { createReadModel, type ReadModel } from '@twinlog/fleet';
import { createRestGateway, signServiceSas, type ListeningGateway, type RestGateway } from '@twinlog/gateway';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const HUB = 'localhost';
const KEY = Buffer.alloc(32, 7).toString('base64');
let dir: string;
let log: EmbeddedLog;
let projector: Projector;
let client: TwinClient;
let readModel: ReadModel;
const gateways: RestGateway[] = [];
const servers: ListeningGateway[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-fleet-gw-'));
  log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: () => Date.now() });
  client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'gw-test', pollIntervalMs: 5 });
  readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const g of gateways.splice(0)) await g.close();
  await readModel.close();
  await client.close();
  await projector.stop();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

async function serve(withView: boolean): Promise<number> {
  const gateway = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: Date.now,
    policies: [{ name: 'iothubowner', key: KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
    ...(withView ? { queryView: readModel } : {}),
  });
  gateways.push(gateway);
  const server = await gateway.listen({ port: 0, host: '127.0.0.1' });
  servers.push(server);
  return server.port;
}

async function queryAll(port: number, query: string, pageSize: number, extra: Record<string, string> = {}) {
  const items: Record<string, unknown>[] = [];
  let continuation: string | null = null;
  let freshness: string | null;
  for (;;) {
    const res: Response = await fetch(`http://127.0.0.1:${port}/devices/query?api-version=2021-04-12`, {
      method: 'POST',
      headers: {
        authorization: signServiceSas(HUB, 'iothubowner', KEY, Math.floor(Date.now() / 1000) + 3600),
        'content-type': 'application/json; charset=utf-8',
        'x-ms-max-item-count': String(pageSize),
        ...(continuation === null ? {} : { 'x-ms-continuation': continuation }),
        ...extra,
      },
      body: JSON.stringify({ query }),
    });
    expect(res.status).toBe(200);
    items.push(...((await res.json()) as Record<string, unknown>[]));
    freshness = res.headers.get('x-twinlog-freshness');
    continuation = res.headers.get('x-ms-continuation');
    if (continuation === null) return { items, freshness };
    expect(continuation).not.toBe('');
  }
}

describe('gateway queries through the read model', () => {
  it('pages the same twins as the in-memory path and carries freshness', async () => {
    const receipts = [];
    for (let i = 0; i < 7; i++) {
      const id = `dev-${i}`;
      await client.createDevice(id, { wait: true });
      receipts.push(await client.mergeTags(id, { site: i % 2 === 0 ? 'a' : 'b' }));
    }
    await readModel.waitFor(receipts);
    const viewPort = await serve(true);
    const memoryPort = await serve(false);
    const q = "SELECT * FROM devices WHERE tags.site = 'a'";
    const viaView = await queryAll(viewPort, q, 2);
    const inMemory = await queryAll(memoryPort, q, 2);
    expect(viaView.items.map((t) => t['deviceId'])).toEqual(['dev-0', 'dev-2', 'dev-4', 'dev-6']);
    expect(viaView.items).toEqual(inMemory.items);
    expect(viaView.freshness).toBe(readModel.freshness());
    expect(inMemory.freshness).toBeNull();

    const grouped = await queryAll(
      viewPort,
      'SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site',
      1,
      { 'x-twinlog-freshness': viaView.freshness! },
    );
    expect(grouped.items).toEqual([
      { site: 'a', n: 4 },
      { site: 'b', n: 3 },
    ]);
  });
});
