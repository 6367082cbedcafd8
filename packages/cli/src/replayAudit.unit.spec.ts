/**
 * `twinlog replay --twins` and the fleet audit (`audit --all`, `--where`, `--format csv`, `--output`) in-process,
 * on an embedded store written by a test producer: what they print is checked against the library's own replay.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderTwin } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, replay } from '@twinlog/projector';
import { createTestProducer } from '@twinlog/projector/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseUntil } from './internal/commands.ts';
import { embeddedPath } from './internal/openStore.ts';
import { runCli } from './runCli.ts';

let data: string;

beforeEach(async () => {
  data = mkdtempSync(join(tmpdir(), 'twinlog-replay-audit-'));
  const log = createEmbeddedLog({ path: embeddedPath(data) });
  await ensureTwinTopics(log, 2);
  const producer = createTestProducer(log, 'ops');
  const regions: Record<string, string> = { 'd-1': 'eu', 'd-2': 'us', 'd-3': 'eu' };
  await producer.send(Object.keys(regions).map((id) => producer.event(id, 'create')));
  await producer.send(Object.entries(regions).map(([id, region]) => producer.event(id, 'tags', { region })));
  await producer.send([producer.event('d-1', 'desired', { fw: '2.0', note: 'a "quoted", multi\nline value' })]);
  await producer.send([producer.event('d-2', 'desired', { fw: '2.0' })]);
  await producer.send([producer.event('d-3', 'tags', { region: 'us' })]);
  await log.close();
});
afterEach(() => rmSync(data, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...args, '--data', data], {
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    stderrIsTTY: false,
    env: {},
  });
  return { code, out, err };
}

/** Minimal RFC 4180 reader: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  return rows;
}

describe('replay --twins', () => {
  it('writes every rebuilt twin as one JSON line, equal to the library replay, with the summary on stderr for -', async () => {
    const log = createEmbeddedLog({ path: embeddedPath(data) });
    const expected = [...(await replay({ log })).states.values()].map((s) => renderTwin(s));
    await log.close();
    const stdout = await cli(['replay', '--twins', '-']);
    expect(stdout.code).toBe(0);
    const twins = stdout.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string });
    expect(twins.sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual(
      expected.sort((a, b) => a.deviceId.localeCompare(b.deviceId)),
    );
    expect(stdout.err).toMatch(/^replayed embedded:/m);
    const file = join(data, 'twins.jsonl');
    const toFile = await cli(['replay', '--twins', file]);
    expect(toFile.out).toContain(`twins written to ${file} (JSON lines)`);
    expect(readFileSync(file, 'utf8')).toBe(stdout.out);
  });

  it('reads --until as one offset, or as offsets per partition', () => {
    expect(parseUntil('12')).toEqual({ offset: 12 });
    expect(parseUntil('0:3,1:0')).toEqual({
      offsets: new Map([
        [0, 3],
        [1, 0],
      ]),
    });
    expect(() => parseUntil('0:3,0:4')).toThrow('--until names partition 0 twice');
    expect(() => parseUntil('0:3,')).toThrow(/--until must be an ISO-8601 time/);
  });

  it('with offsets per partition, bounds only the partitions named', async () => {
    const all = JSON.parse((await cli(['replay', '--json'])).out) as {
      partitions: { partition: number; backend: { last: number | null } }[];
    };
    const bounded = JSON.parse((await cli(['replay', '--json', '--until', '0:0'])).out) as typeof all;
    expect(bounded.partitions[0]!.backend.last).toBe(0);
    expect(bounded.partitions[1]!.backend.last).toBe(all.partitions[1]!.backend.last);
  });
});

describe('audit of a fleet', () => {
  it('--all streams every twin’s events as JSON lines, --where keeps those after which the twin matched', async () => {
    const all = await cli(['audit', '--all', '--format', 'json']);
    expect(all.code).toBe(0);
    const events = all.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; section: string; patch: unknown });
    expect(events).toHaveLength(9);
    expect(new Set(events.map((e) => e.deviceId))).toEqual(new Set(['d-1', 'd-2', 'd-3']));
    expect(all.err).toMatch(/audit: 9 events kept of 9 applied, 3 twins/);

    const eu = await cli(['audit', '--where', "tags.region = 'eu'", '--json']);
    const kept = eu.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; section: string; patch: unknown });
    // d-1's tag and desired events, d-3's first tag event; not d-3's move to 'us', nor anything of d-2, nor the creates
    expect(kept.map((e) => [e.deviceId, e.section])).toEqual(
      expect.arrayContaining([
        ['d-1', 'tags'],
        ['d-1', 'desired'],
        ['d-3', 'tags'],
      ]),
    );
    expect(kept).toHaveLength(3);
    expect(kept.find((e) => e.deviceId === 'd-3')!.patch).toEqual({ region: 'eu' });
  });

  it('--format csv writes a header and one RFC 4180 row per event, to --output', async () => {
    const file = join(data, 'audit.csv');
    const r = await cli(['audit', '--all', '--section', 'desired', '--format', 'csv', '--output', file]);
    expect(r).toMatchObject({ code: 0, out: '' });
    const rows = parseCsv(readFileSync(file, 'utf8'));
    expect(rows[0]).toEqual([
      'time',
      'deviceId',
      'actor',
      'section',
      'op',
      'patch',
      'version',
      'tags',
      'desired',
      'reported',
      'topic',
      'partition',
      'offset',
      'appendTime',
    ]);
    expect(rows.slice(1).map((row) => [row[1], row[3], JSON.parse(row[5]!) as unknown])).toEqual(
      expect.arrayContaining([
        ['d-1', 'desired', { fw: '2.0', note: 'a "quoted", multi\nline value' }],
        ['d-2', 'desired', { fw: '2.0' }],
      ]),
    );
    expect(rows).toHaveLength(3);
  });

  it('refuses a bare audit, --all with a device, and a bad condition, each with a clear error', async () => {
    expect(await cli(['audit'])).toMatchObject({
      code: 2,
      err: "twinlog: missing required argument 'deviceId' (or --all, or --where <condition>, for a fleet)\n",
    });
    expect((await cli(['audit', 'd-1', '--all'])).err).toBe(
      'twinlog: --all audits every twin: give it without a device id\n',
    );
    const bad = await cli(['audit', '--where', 'tags.region = ']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/QUERY_/);
  });
});

describe('audit of a fleet on worker threads', () => {
  it('prints the same bytes with --workers 2 as in this thread, in JSON, CSV and text', async () => {
    const big = mkdtempSync(join(tmpdir(), 'twinlog-audit-workers-'));
    try {
      const log = createEmbeddedLog({ path: embeddedPath(big) });
      await ensureTwinTopics(log, 4);
      const producer = createTestProducer(log, 'ops');
      const ids = Array.from({ length: 60 }, (_, i) => `w-${i}`);
      await producer.send(ids.map((id) => producer.event(id, 'create')));
      for (let round = 0; round < 20; round++)
        await producer.send(
          ids.map((id, i) =>
            producer.event(id, round % 2 === 0 ? 'desired' : 'tags', { round, region: i % 3 === 0 ? 'eu' : 'us' }),
          ),
        );
      await log.close();
      for (const args of [
        ['--all', '--format', 'json'],
        ['--all', '--format', 'csv', '--section', 'desired'],
        ['--where', "tags.region = 'eu'"],
      ]) {
        const run = async (workers: string): Promise<{ code: number; out: string; err: string }> => {
          let out = '';
          let err = '';
          const code = await runCli(['audit', ...args, '--workers', workers, '--data', big], {
            stdout: (t) => (out += t),
            stderr: (t) => (err += t),
            stderrIsTTY: false,
            env: {},
          });
          return { code, out, err };
        };
        const here = await run('0');
        const threads = await run('2');
        expect(here.code).toBe(0);
        expect(here.out.split('\n').length).toBeGreaterThan(200);
        expect(threads.out).toBe(here.out);
        // the progress lines differ in their rates; the summary does not
        const summary = (err: string): string | undefined => /audit: .* twins/.exec(err)?.[0];
        expect(summary(threads.err)).toBe(summary(here.err));
        expect(summary(here.err)).toBeDefined();
      }
    } finally {
      rmSync(big, { recursive: true, force: true });
    }
  });
});
