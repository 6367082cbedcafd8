/**
 * The README's first command runs `npm run tour`: the tour must run to the end as a process, on
 * the embedded log, and show the delta converging, the audit trail and the time travel.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

describe('npm run tour', () => {
  it('runs on the embedded log to the end', { timeout: 120_000 }, async () => {
    const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--conditions=source', '--import', 'tsx', join(ROOT, 'examples/tour.ts')],
        { cwd: ROOT, timeout: 110_000 },
        (error, out) => resolve({ stdout: out, code: error === null ? 0 : (child.exitCode ?? 1) }),
      );
    });
    expect(code).toBe(0);
    expect(stdout).toContain('fan.mode=converged, targetTemperature=converged');
    expect(stdout).toMatch(/thermostat-1\s+reported\s+\{"targetTemperature":\{"value":21,"ac":200,"av":2\}/);
    expect(stdout).toContain('{"$metadata":{"$lastUpdated"'); // the reported section before the report: empty
    expect(stdout.trimEnd().endsWith('done.')).toBe(true);
  });
});
