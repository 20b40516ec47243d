/**
 * Election events on the memory store with a fake clock: the leader hears it leads, followers hear who
 * leads (and the NEW owner after a hand-over or a failure), and only a node that led hears it stopped.
 */
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { ElectionEvent } from '../../src/scheduler/elections.js';
import { Sim, type SimNode } from '../helpers/sim.js';
import { settleWithin } from '../helpers/fake-wait.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

const SYNC: [string, { every: string }] = ['sync', { every: '1s' }];
const NO_REBALANCE = { cluster: { rebalanceAfter: 600_000 } };

function listen(node: SimNode, options: Parameters<SimNode['cluster']['elections']>[0] = {}): { events: ElectionEvent[]; done: Promise<unknown> } {
  const events: ElectionEvent[] = [];
  const done = (async () => {
    for await (const e of node.cluster.elections(options)) events.push(e);
  })();
  return { events, done };
}

const brief = (e: ElectionEvent) => ({ role: e.role, previousRole: e.previousRole, owner: e.owner?.node ?? null });

/** `a` leads `sync`; `b` and `c` join after and follow. */
async function ledByA(): Promise<SimNode[]> {
  sim = new Sim();
  const a = await sim.node('a', [SYNC], NO_REBALANCE);
  await sim.until(async () => (await sim.owners()).get('sync') === 'a', 5000);
  const b = await sim.node('b', [SYNC], NO_REBALANCE);
  const c = await sim.node('c', [SYNC], NO_REBALANCE);
  await sim.advance(500);
  return [a, b, c];
}

describe('election events', () => {
  it('tells the leader it leads (with its token and signal) and followers who leads, with node, host and pid', async () => {
    const [a, b, c] = await ledByA();
    const la = listen(a!);
    const lb = listen(b!);
    const lc = listen(c!);
    await sim.advance(100);
    const [lead] = la.events;
    expect(lead).toMatchObject({ task: 'sync', role: 'leader', previousRole: null, owner: { node: 'a', host: hostname(), pid: process.pid } });
    expect(typeof lead!.token).toBe('bigint');
    expect(lead!.signal?.aborted).toBe(false);
    for (const l of [lb, lc]) {
      expect(l.events).toEqual([{ task: 'sync', role: 'follower', previousRole: null, owner: { node: 'a', host: hostname(), pid: process.pid }, token: lead!.token }]);
    }
    // Nothing changes: no more events, however long.
    await sim.advance(5000);
    expect([la, lb, lc].map((l) => l.events.length)).toEqual([1, 1, 1]);
  });

  it('after the leader leaves, the new leader hears it leads and the other follower learns the NEW owner; nobody else "stops leading"', async () => {
    const [a, b, c] = await ledByA();
    const la = listen(a!);
    const lb = listen(b!);
    const lc = listen(c!);
    await sim.advance(100);
    const first = la.events[0]!;
    await a!.cluster.close();
    expect(first.signal?.aborted).toBe(true);
    await sim.until(async () => [lb, lc].some((l) => l.events.at(-1)?.role === 'leader'), 5000);
    await sim.advance(500);
    const [winner, other] = lb.events.at(-1)?.role === 'leader' ? [lb, lc] : [lc, lb];
    const winnerId = winner === lb ? 'b' : 'c';
    const newLead = winner.events.at(-1)!;
    expect(newLead).toMatchObject({ role: 'leader', previousRole: 'follower', owner: { node: winnerId } });
    expect(newLead.token! > first.token!).toBe(true);
    expect(other.events.at(-1)).toMatchObject({ role: 'follower', previousRole: 'follower', owner: { node: winnerId }, token: newLead.token });
    // Only a node that led can hear that it stopped leading.
    for (const l of [lb, lc]) expect(l.events.some((e) => e.previousRole === 'leader')).toBe(false);
    // a's stream ended quietly with its cluster.
    expect((await settleWithin(sim.clock, la.done, 100, 1)).error).toBeUndefined();
  });

  it('a leader cut off from the store hears it stopped leading (its signal aborted first), then follows the new owner', async () => {
    const [a, b] = await ledByA();
    const la = listen(a!);
    const lb = listen(b!);
    await sim.advance(100);
    const lead = la.events[0]!;
    sim.backend.sever(a!.store);
    await sim.until(() => la.events.length >= 2, 5000);
    expect(brief(la.events[1]!)).toEqual({ role: 'follower', previousRole: 'leader', owner: null });
    expect(lead.signal?.aborted).toBe(true);
    await sim.until(() => lb.events.at(-1)?.role === 'leader' || (lb.events.at(-1)?.owner?.node ?? 'a') !== 'a', 10_000);
    sim.backend.heal(a!.store);
    await sim.advance(3000);
    const owner = (await sim.owners()).get('sync')!;
    expect(owner).not.toBe('a');
    expect(brief(la.events.at(-1)!)).toEqual({ role: 'follower', previousRole: 'follower', owner });
    expect(la.events.filter((e) => e.previousRole === 'leader')).toHaveLength(1);
    expect(lb.events.map(brief).filter((e) => e.previousRole === 'leader')).toEqual([]);
  });

  it('follows one named task, also one this node does not declare, and ends on its signal', async () => {
    const [a, b] = await ledByA();
    const controller = new AbortController();
    const lb = listen(b!, { task: 'sync', signal: controller.signal });
    const none = listen(b!, { task: 'nobody-runs-this', signal: controller.signal });
    await sim.advance(100);
    expect(lb.events.map(brief)).toEqual([{ role: 'follower', previousRole: null, owner: 'a' }]);
    expect(none.events).toEqual([{ task: 'nobody-runs-this', role: 'follower', previousRole: null, owner: null, token: null }]);
    controller.abort();
    expect((await settleWithin(sim.clock, lb.done, 100, 1)).error).toBeUndefined();
    expect((await settleWithin(sim.clock, none.done, 100, 1)).error).toBeUndefined();
    expect(() => a!.cluster.elections({ task: '' })).toThrow(/^elections: task must be a task name/);
  });
});
