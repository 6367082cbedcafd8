/**
 * The benchmarks' workload, one generator for all of them (deterministic: mulberry32 seed 42):
 * one `create` per device, then patches to random devices, half `desired` and half `reported`,
 * each writing ~5 leaves (4 groups × 8 leaves, 10 % deletions), stamped by one HLC whose clock
 * starts at `startWall` and advances about one millisecond per hundred events.
 */
import { createHybridClock, type Patch, type TwinEvent } from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';

export function* benchEvents({
  events,
  devices,
  startWall,
}: {
  events: number;
  devices: number;
  startWall: number;
}): Generator<TwinEvent> {
  const rnd = seededRandom(42);
  let t = startWall;
  const clock = createHybridClock({ physicalNow: () => (t += rnd() < 0.01 ? 1 : 0) });
  let seq = 0;
  const base = { v: 1, op: 'merge' as const, actor: 'bench' };
  let n = 0;
  for (let d = 0; d < devices && n < events; d++, n++) {
    yield {
      ...base,
      id: { writer: 'gw-bench-1', seq: ++seq },
      deviceId: `dev-${d}`,
      section: 'create',
      patch: {},
      stamp: clock.now(),
    };
  }
  for (; n < events; n++) {
    const deviceId = `dev-${Math.floor(rnd() * devices)}`;
    const section = rnd() < 0.5 ? 'desired' : 'reported';
    const patch: Patch = {};
    for (let i = 0; i < 5; i++) {
      const group = (patch[`group${Math.floor(rnd() * 4)}`] ??= {}) as Patch;
      group[`leaf${Math.floor(rnd() * 8)}`] =
        rnd() < 0.1 ? null : rnd() < 0.5 ? Math.floor(rnd() * 1000) : `v${Math.floor(rnd() * 100)}`;
    }
    yield { ...base, id: { writer: 'gw-bench-1', seq: ++seq }, deviceId, section, patch, stamp: clock.now() };
  }
}
