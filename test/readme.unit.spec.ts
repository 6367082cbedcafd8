/**
 * The README's code is executed here: its `ts` block must equal the `readme-core` region below,
 * and the region runs with assertions on the values the README's comments promise.
 */
/* eslint-disable @typescript-eslint/no-unused-expressions -- the README's snippet shows values as bare expressions */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function region(source: string, name: string): string {
  const start = source.indexOf(`// #region ${name}\n`);
  const end = source.indexOf('    // #endregion', start);
  const body = source.slice(start + `// #region ${name}\n`.length, end);
  return body
    .split('\n')
    .map((line) => line.replace(/^ {4}/, ''))
    .join('\n')
    .trimEnd();
}

describe('README', () => {
  it('its core example is this test', async () => {
    // #region readme-core
    const { applyEvent, createTwinState, renderTwin, delta } = await import('@twinlog/core');
    type TwinEvent = import('@twinlog/core').TwinEvent;

    const state = createTwinState('thermo-1');
    const event = (seq: number, section: TwinEvent['section'], patch: object, wall: number): TwinEvent => ({
      v: 1,
      id: { writer: 'gw-1', seq },
      deviceId: 'thermo-1',
      section,
      op: 'merge',
      patch: patch as TwinEvent['patch'],
      stamp: { wall, counter: 0 },
      actor: 'readme',
    });
    applyEvent(state, event(1, 'create', {}, 1_700_000_000_000));
    applyEvent(state, event(2, 'desired', { target: 21 }, 1_700_000_001_000));
    applyEvent(state, event(3, 'reported', { target: { value: 21, ac: 200, av: 2 } }, 1_700_000_002_000));

    renderTwin(state).properties.desired.$version; // 2 (create counts once, as in IoT Hub)
    delta(renderTwin(state)).entries[0]!.status; // 'converged'
    // #endregion
    expect(renderTwin(state).properties.desired.$version).toBe(2);
    expect(delta(renderTwin(state)).entries[0]!.status).toBe('converged');

    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = /```ts\n([\s\S]*?)\n```/.exec(readme)?.[1];
    const expected = region(readFileSync(import.meta.filename, 'utf8'), 'readme-core').replace(
      "const { applyEvent, createTwinState, renderTwin, delta } = await import('@twinlog/core');\ntype TwinEvent = import('@twinlog/core').TwinEvent;",
      "import { applyEvent, createTwinState, renderTwin, delta, type TwinEvent } from '@twinlog/core';",
    );
    expect(block).toBe(expected);
  });

  it('gives the test command that .ci/run runs', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const ci = readFileSync(join(import.meta.dirname, '..', '.ci', 'run'), 'utf8');
    expect(readme).toMatch(/^npm test\b/m);
    expect(ci).toMatch(/^npm test$/m);
  });
});
