/**
 * The public surface of @twinlog/fleet: exactly the whitelist, internals unreachable through the
 * package's `exports` map, and every exported function documented with an example.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as fleet from './index.ts';

describe('@twinlog/fleet public surface', () => {
  it('exports exactly the whitelist', () => {
    expect(Object.keys(fleet).sort()).toEqual(
      [
        'FLEET_ERROR_CODES',
        'createConfigurationManager',
        'createJobRunner',
        'createReadModel',
        'decodeFreshness',
        'encodeFreshness',
        'isFleetError',
      ].sort(),
    );
  });

  it('keeps internal/ unreachable', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    expect(pkg.exports).toEqual({
      '.': { source: './src/index.ts', types: './dist/index.d.ts', default: './dist/index.js' },
      './internal/*': null,
    });
  });

  it('documents the factories with an example', () => {
    for (const file of [
      'createReadModel.ts',
      'createJobRunner.ts',
      'createConfigurationManager.ts',
      'fleetError.ts',
      'freshness.ts',
    ]) {
      const code = readFileSync(join(import.meta.dirname, file), 'utf8');
      expect(`${file}: ${code.includes('@example')}`).toBe(`${file}: true`);
    }
  });
});
