import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { OrderedText } from './orderedText.ts';

const auditDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('twinlog-audit-'));

describe('OrderedText', () => {
  it('writes each partition’s text in partition order, holding later ones in files until their turn', () => {
    const before = new Set(auditDirs());
    let out = '';
    const text = new OrderedText([2, 0, 1], (t) => (out += t));
    text.write(0, 'b1 ');
    text.write(2, 'a1 ');
    text.write(1, 'c1 ');
    expect(out).toBe('a1 ');
    const spilled = auditDirs().filter((n) => !before.has(n));
    expect(spilled).toHaveLength(1);
    text.end(0); // not its turn yet: still held
    text.write(2, 'a2 ');
    expect(out).toBe('a1 a2 ');
    text.end(2); // 0 comes out whole, and 1 is copied out up to now
    expect(out).toBe('a1 a2 b1 c1 ');
    text.write(1, 'c2 ü');
    text.end(1);
    expect(out).toBe('a1 a2 b1 c1 c2 ü');
    text.close();
    expect(existsSync(`${tmpdir()}/${spilled[0]}`)).toBe(false);
  });

  it('copies a held partition out whole, whatever its size and however its characters straddle the copy chunks', () => {
    let out = '';
    const text = new OrderedText([0, 1], (t) => (out += t));
    const big = `${'é'.repeat(700_001)}\n`.repeat(2);
    text.write(1, big);
    text.write(0, 'x\n');
    text.end(0);
    text.end(1);
    text.close();
    expect(out).toBe(`x\n${big}`);
  });
});
