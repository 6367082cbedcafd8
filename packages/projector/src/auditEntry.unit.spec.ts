import { createTwinState, type TwinEvent } from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import { lineCollector } from './auditEntry.ts';

const event = (deviceId: string): TwinEvent => ({
  v: 1,
  id: { writer: 'w', seq: 1 },
  deviceId,
  section: 'desired',
  op: 'merge',
  patch: {},
  stamp: { wall: 1, counter: 0 },
  actor: 'a',
});

describe('lineCollector', () => {
  it('encodes lines into 64 KiB chunks that reassemble exactly, multi-byte characters and long lines included', async () => {
    for (const pad of ['x'.repeat(1000), 'é'.repeat(777), '€😀'.repeat(20_000)]) {
      const chunks: Uint8Array[] = [];
      const collector = await lineCollector(
        {
          lines: {
            module: new URL('./auditLines.fixture.ts', import.meta.url).href,
            export: 'paddedLine',
            options: { pad },
          },
        },
        (c) => chunks.push(c),
      );
      const ids = Array.from({ length: 150 }, (_, i) => `d-${i}`);
      const source = { topic: 't', partition: 0, offset: 0, timestamp: 0 };
      for (const id of ids) collector.onApplied(event(id), createTwinState(id), source);
      collector.flush();
      expect(chunks.every((c) => c.length <= 64 * 1024)).toBe(true);
      expect(Buffer.concat(chunks).toString('utf8')).toBe(ids.map((id) => `${pad}${id}\n`).join(''));
    }
  });
});
