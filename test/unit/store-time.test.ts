/**
 * Ticks by the store's clock (issue 18, skewed clocks): a node whose wall clock is 30 s off runs each
 * tick at its time as the store tells it, and hands over without a gap. Before, a node 30 s ahead ran
 * every tick 30 s early and its successors then held the task idle until real time caught up; a node
 * 30 s behind ran every tick 30 s late and its successor recorded 30 ticks missed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskContext, TaskHandler } from '../../src/scheduler/task.js';
import { SkewedClock } from '../../src/testing/fake-clock.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

describe('ticks by the store’s clock', () => {
  it.each([30_000, -30_000])('a node whose wall clock is off by %i ms runs ticks on time and hands over without a gap', async (skewMs) => {
    sim = new Sim();
    const runs: { node: string; lateMs: number; at: number }[] = [];
    // Lateness by the true (store) clock, not by the node's own.
    const handler = (node: string) => ((ctx: TaskContext) => void runs.push({ node, lateMs: sim.clock.now() - ctx.tick.getTime(), at: sim.clock.monotonic() })) as TaskHandler<never>;
    const opts = { cluster: { rebalanceAfter: '1h' } };
    const skewed = await sim.node('skewed', [['sync', { every: '1s' }, handler('skewed')]], { ...opts, clock: new SkewedClock(sim.clock, skewMs) });
    await sim.advance(500);
    await sim.node('normal', [['sync', { every: '1s' }, handler('normal')]], opts);
    await sim.advance(8000);
    expect(runs.filter((r) => r.node === 'skewed').length).toBeGreaterThanOrEqual(7);

    const closedAt = sim.clock.monotonic();
    await skewed.cluster.close();
    await sim.advance(8000);
    const after = runs.filter((r) => r.node === 'normal');
    expect(after.length).toBeGreaterThanOrEqual(6);
    expect(after[0]!.at - closedAt).toBeLessThan(2000); // the successor is not left idle
    // Every run, on either node, started at its tick by the store's clock (the fake clock runs timers on time).
    expect(runs.map((r) => r.lateMs).filter((ms) => ms < 0 || ms > 100)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    const missed = (await sim.runRecords('sync')).filter((r) => r.value.status === 'missed');
    expect(missed.reduce((n, r) => n + (r.value.missed?.count ?? 0), 0)).toBeLessThanOrEqual(2); // the hand-over, not 30 ticks
  });
});
