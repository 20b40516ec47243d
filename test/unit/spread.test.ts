/**
 * The spread bar of the scheduler: 300 singleton tasks on 3 nodes → each node owns 100 ± 15 %; after a
 * node leaves and returns, the spread recovers within 2 TTLs, moving only the tasks the returning node
 * should take. On the simulated fleet (memory store, FakeClock), so the timing is exact.
 */
import { afterEach, expect, it } from 'vitest';
import { Sim } from '../helpers/sim.js';
import type { TaskOptions } from '../../src/scheduler/task.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
});

const TTL = 3000;
const tasks: [string, TaskOptions][] = Array.from({ length: 300 }, (_, i) => [`job-${String(i).padStart(3, '0')}`, { every: '10s' }]);

function withinBar(counts: Map<string, number>, nodes: string[]): void {
  for (const id of nodes) {
    const owned = counts.get(id) ?? 0;
    expect(owned, `${id} owns ${owned}`).toBeGreaterThanOrEqual(85);
    expect(owned, `${id} owns ${owned}`).toBeLessThanOrEqual(115);
  }
}

it('spreads 300 tasks 100 ± 15 % over 3 nodes, and recovers within 2 TTLs of a node returning, moving almost only what it should take', async () => {
  sim = new Sim();
  for (const id of ['a', 'b', 'c']) await sim.node(id, tasks, { ttl: TTL });
  await sim.advance(3 * TTL);
  const settled = await sim.ownedCounts();
  withinBar(settled, ['a', 'b', 'c']);
  expect([...settled.values()].reduce((x, y) => x + y, 0)).toBe(300);

  // c leaves cleanly: a and b take its tasks at once.
  const c = sim.nodes.find((n) => n.id === 'c')!;
  await c.cluster.close();
  sim.nodes.splice(sim.nodes.indexOf(c), 1);
  await sim.advance(1000);
  const twoNodes = await sim.owners();
  expect(Object.fromEntries(await sim.ownedCounts())).toEqual({ a: 150, b: 150 });

  // c returns (same id): within 2 TTLs the spread is back within the bar …
  await sim.node('c', tasks, { ttl: TTL });
  const recovery = await sim.until(async () => {
    const counts = await sim.ownedCounts();
    return ['a', 'b', 'c'].every((id) => Math.abs((counts.get(id) ?? 0) - 100) <= 15);
  }, 2 * TTL, 50);
  expect(recovery).toBeLessThanOrEqual(2 * TTL);
  await sim.advance(TTL);
  // … and what moved went to c: the tasks it should take, plus at most 1 % shuffled between a and b
  // (bounded load: a task whose first choice is full goes to its next choice, which can change when the
  // capacity per node does). Measured: 101 moves for 100 needed.
  const after = await sim.owners();
  const moved = [...twoNodes.keys()].filter((t) => twoNodes.get(t) !== after.get(t));
  const toC = moved.filter((t) => after.get(t) === 'c').length;
  expect(toC).toBe((await sim.ownedCounts()).get('c'));
  expect(moved.length - toC).toBeLessThanOrEqual(3);
  withinBar(await sim.ownedCounts(), ['a', 'b', 'c']);
  expect(sim.duplicateTicks()).toBe(0);
});
