/**
 * An owner whose session is alive keeps its task through a store error between ticks (issue 22): the
 * read of the task's pause flag before each tick failed during the store's own failover (an etcd
 * election answers "leader changed", a ZooKeeper client is between servers), and the owner used to end
 * its lease, drop the task (`owner:lost`) and take it again later, with ticks recorded missed. Now the
 * read is retried under the lease, like the tick's claim. Memory store, FakeClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { failCalls, Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
});

describe('owner and a failing store between ticks', () => {
  it('keeps the task and runs every tick once the store answers again', async () => {
    sim = new Sim();
    const node = await sim.node('a', [['x', { every: 500 }]]);
    await sim.until(async () => (await sim.owners()).get('x') === 'a', 5000);
    await sim.advance(1200, 10);
    const runsBefore = sim.starts.length;
    expect(runsBefore).toBeGreaterThanOrEqual(2);
    // Reads fail for 400 ms — across a tick — while the session stays alive (renewals still answer).
    const heal = failCalls(node.store, ['get']);
    await sim.advance(400, 10);
    heal();
    await sim.advance(2000, 10);
    expect(node.of('owner:lost')).toEqual([]);
    expect(node.of('tick:missed')).toEqual([]);
    // Every tick of the 2.4 s ran, the delayed one too (by this owner).
    expect(sim.starts.length - runsBefore).toBeGreaterThanOrEqual(4);
    expect(new Set(sim.starts.map((s) => s.node))).toEqual(new Set(['a']));
  });
});
