import { afterEach, describe, expect, it } from 'vitest';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
});

describe('singleton tasks on a simulated fleet', () => {
  it('runs every tick of a task exactly once across three nodes', async () => {
    sim = new Sim();
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(20_000);
    const ticks = sim.starts.filter((s) => s.task === 'sync').map((s) => s.tick);
    expect(ticks.length).toBeGreaterThanOrEqual(19);
    expect(sim.duplicateTicks()).toBe(0);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(1000);
  });
});
