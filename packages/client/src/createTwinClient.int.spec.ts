/**
 * The client end to end on the embedded SQLite log, with a real projector: the unit spec's main
 * scenario on real storage, real append times and polling subscriptions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTwinlogError, type JsonObject } from '@twinlog/core';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTwinClient, sectionOf, type TwinClient } from './createTwinClient.ts';

let dir: string;
let log: EmbeddedLog;
let projector: Projector;
let client: TwinClient;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-client-'));
  log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: () => Date.now() });
  client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'int-test', pollIntervalMs: 5 });
});

afterEach(async () => {
  await client.close();
  await projector.stop();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('createTwinClient on the embedded log', () => {
  it('creates, merges, reports, updates with immer, and decides conditional writes', async () => {
    const feed = client.changes({ deviceId: 'dev1' });
    await feed.ready;

    expect(await client.createDevice('dev1', { wait: true })).toMatchObject({ accepted: true });
    await client.mergeDesired('dev1', { fw: '1.0', net: { ssid: 'a' } }, { wait: true });
    await client.mergeReported('dev1', { fw: '0.9' }, { wait: true });
    await client.update('dev1', 'desired', (d) => void ((d['net'] as JsonObject)['ssid'] = 'b'), { wait: true });

    const twin = await client.getTwin('dev1');
    expect(sectionOf(twin, 'desired')).toEqual({ fw: '1.0', net: { ssid: 'b' } });
    expect(sectionOf(twin, 'reported')).toEqual({ fw: '0.9' });

    const ok = await client.patchTwin('dev1', { tags: { site: 'x' }, desired: { fw: '1.1' } }, { ifMatch: twin.etag });
    expect(ok).toMatchObject({ accepted: true, etag: (await client.getTwin('dev1')).etag });
    const stale = await client.mergeDesired('dev1', { fw: '6.6' }, { ifMatch: twin.etag });
    expect(stale).toMatchObject({ accepted: false, code: 'PRECONDITION_FAILED' });

    const before = await log.endOffsets(TOPICS.backend);
    await expect(client.mergeTags('dev1', { 'bad key': 1 })).rejects.toSatisfy((e) => isTwinlogError(e, 'KEY_INVALID'));
    expect(await log.endOffsets(TOPICS.backend)).toEqual(before);

    const sections: string[] = [];
    for await (const c of feed) if (sections.push(c.section) === 6) break;
    expect(sections).toEqual(['create', 'desired', 'reported', 'desired', 'tags', 'desired']);
    const after = await client.getTwin('dev1');
    expect(after.tags).toEqual({ site: 'x' });
    expect(sectionOf(after, 'desired')).toEqual({ fw: '1.1', net: { ssid: 'b' } });
  });
});
