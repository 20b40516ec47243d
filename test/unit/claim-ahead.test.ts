/**
 * Ticks claimed ahead of their time (src/scheduler/claim-ahead.ts, issue 21): the handler starts at the
 * tick, the claim stays the one thing that decides who runs a tick, and a claim ahead whose owner stops
 * leading before the tick is withdrawn (graceful) or recorded (lost), never run twice nor lost silently.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClaimLead } from '../../src/scheduler/claim-ahead.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

/** Advances until the wall clock is `offsetMs` past a whole multiple of `periodMs` (offset may be negative). */
async function alignTo(periodMs: number, offsetMs: number): Promise<void> {
  const delta = (((offsetMs - (sim.clock.now() % periodMs)) % periodMs) + periodMs) % periodMs;
  if (delta > 0) await sim.advance(delta, 1);
}

describe('ClaimLead', () => {
  it('covers the slowest recent preparation, within bounds', () => {
    const lead = new ClaimLead(true, 1000);
    expect(lead.ms).toBe(20); // before any sample
    lead.observe(20, 10_000, 9_990); // took 10 ms from its planned wake-up
    expect(lead.ms).toBe(Math.ceil(10 * 1.25) + 3);
    lead.observe(16, 11_000, 11_100); // answered 100 ms after the start: took 116 ms
    expect(lead.ms).toBe(Math.ceil(116 * 1.25) + 3);
    lead.observe(148, 12_000, 13_000);
    expect(lead.ms).toBe(250); // a quarter of the interval at most
    expect(new ClaimLead(false, 1000).ms).toBe(0);
    for (let i = 0; i < 20; i++) lead.observe(10, 20_000, 20_000);
    expect(lead.ms).toBe(16); // the slow samples age out
  });
});

describe('claiming a tick ahead of its time', () => {
  it('starts the handler at the tick, with the claim written before it', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['beat', { every: '1s' }]]);
    await sim.advance(6000, 1);
    const started = a.of('run:started');
    expect(started.length).toBeGreaterThanOrEqual(4);
    expect(started.map((s) => s.lateMs)).toEqual(started.map(() => 0));
    const records = (await sim.runRecords('beat')).map((r) => r.value).filter((r) => r.status === 'succeeded');
    expect(records.length).toBeGreaterThanOrEqual(4);
    for (const r of records) {
      expect(r.startedAt).toBe(r.tick);
      expect(r.claimedAt).toBeLessThan(r.tick);
      expect(r.tick - r.claimedAt!).toBeLessThanOrEqual(250);
    }
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('withdraws the claim when its owner closes before the tick: the next owner runs that tick', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['beat', { every: '1s' }]]);
    await sim.advance(3000, 1);
    const b = await sim.node('b', [['beat', { every: '1s' }]]);
    await sim.advance(1000, 1);
    await alignTo(1000, -2); // 2 ms before a tick: within a's lead (≥ 5 ms), claimed
    const tick = sim.clock.now() + 2;
    const claim = (await sim.runRecords('beat')).find((r) => r.value.tick === tick);
    expect(claim?.value.status).toBe('running');
    expect(claim?.value.node).toBe('a');
    const closing = a.cluster.close();
    await sim.until(async () => (await sim.owners()).get('beat') === 'b' && b.of('run:started').some((s) => s.tick === tick), 3000, 1);
    await closing;
    expect(sim.starts.filter((s) => s.tick === tick).map((s) => s.node)).toEqual(['b']);
    expect(sim.duplicateTicks()).toBe(0);
    await sim.advance(2000);
    expect(await sim.lostTicks('beat', 1000)).toEqual([]);
  });

  it('a claim ahead left by an owner cut off before the tick is run once or recorded, never twice', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['beat', { every: '1s' }]], { ttl: 3000 });
    await sim.advance(3000, 1);
    const b = await sim.node('b', [['beat', { every: '1s' }]], { ttl: 3000 });
    await sim.advance(1000, 1);
    await alignTo(1000, -2);
    const tick = sim.clock.now() + 2;
    sim.backend.sever(a.store); // a keeps its local deadline: it may still start the tick it claimed
    await sim.until(() => b.of('owner:acquired').length > 0, 10_000);
    await sim.advance(3000);
    expect(sim.duplicateTicks()).toBe(0);
    expect(sim.starts.filter((s) => s.tick === tick).length).toBeLessThanOrEqual(1);
    expect(await sim.lostTicks('beat', 1000)).toEqual([]);
    const record = (await sim.runRecords('beat')).find((r) => r.value.tick === tick)?.value;
    // Run by a before its deadline, then marked interrupted by b (a could not write its end record).
    expect(record?.status).toBe('aborted');
    expect(record?.error).toMatch(/interrupted/);
  });
});
