import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { OrderedChunks } from './orderedChunks.ts';

const auditDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('twinlog-audit-'));
const utf8 = new TextEncoder();

function collect(order: number[]): { chunks: OrderedChunks; text: () => string } {
  const parts: Uint8Array[] = [];
  const chunks = new OrderedChunks(order, (c) => parts.push(c.slice()));
  return { chunks, text: () => Buffer.concat(parts).toString('utf8') };
}

describe('OrderedChunks', () => {
  it('writes each partition’s bytes in partition order, holding later ones in files until their turn', () => {
    const before = new Set(auditDirs());
    const { chunks, text } = collect([2, 0, 1]);
    chunks.write(0, utf8.encode('b1 '));
    chunks.write(2, utf8.encode('a1 '));
    chunks.write(1, utf8.encode('c1 '));
    expect(text()).toBe('a1 ');
    const spilled = auditDirs().filter((n) => !before.has(n));
    expect(spilled).toHaveLength(1);
    chunks.end(0); // not its turn yet: still held
    chunks.write(2, utf8.encode('a2 '));
    expect(text()).toBe('a1 a2 ');
    chunks.end(2); // 0 comes out whole, and 1 is copied out up to now
    expect(text()).toBe('a1 a2 b1 c1 ');
    chunks.write(1, utf8.encode('c2 ü'));
    chunks.end(1);
    expect(text()).toBe('a1 a2 b1 c1 c2 ü');
    chunks.close();
    expect(existsSync(`${tmpdir()}/${spilled[0]}`)).toBe(false);
  });

  it('copies a held partition out whole, however large', () => {
    const { chunks, text } = collect([0, 1]);
    const big = `${'é'.repeat(700_001)}\n`.repeat(2);
    chunks.write(1, utf8.encode(big));
    chunks.write(0, utf8.encode('x\n'));
    chunks.end(0);
    chunks.end(1);
    chunks.close();
    expect(text()).toBe(`x\n${big}`);
  });
});
