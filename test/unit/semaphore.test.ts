/**
 * Cluster-wide semaphores on the memory store with a fake clock: never more than `limit` holders under
 * contention from several nodes and several callers per node, waits that stop cleanly, bad limits refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { ConfigError, LockHeldError, SessionExpiredError } from '../../src/core/errors.js';
import { Sim, type SimNode } from '../helpers/sim.js';
import { settleWithin, track } from '../helpers/fake-wait.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

async function fleet(n: number): Promise<SimNode[]> {
  sim = new Sim();
  const nodes: SimNode[] = [];
  for (let i = 0; i < n; i++) nodes.push(await sim.node(`node-${i + 1}`, []));
  return nodes;
}

const semHolders = () => sim.observer.listHolders('sem/');

describe('semaphores', () => {
  it('never exceeds its limit with 3 nodes × 4 callers contending, and uses all of it', async () => {
    const nodes = await fleet(3);
    const limit = 3;
    let inside = 0;
    let maxInside = 0;
    let maxInStore = 0;
    let acquisitions = 0;
    const worker = async (node: SimNode, w: number) => {
      const sem = node.cluster.semaphore('exports', { limit });
      for (let i = 0; i < 4; i++) {
        await using permit = await sem.acquire();
        inside += 1;
        acquisitions += 1;
        maxInside = Math.max(maxInside, inside);
        expect(permit.slot).toBeGreaterThanOrEqual(0);
        expect(permit.slot).toBeLessThan(limit);
        maxInStore = Math.max(maxInStore, (await semHolders()).length);
        await sleep(sim.clock, 50 + ((w * 31 + i * 17) % 120));
        inside -= 1;
      }
    };
    const all = Promise.all(nodes.flatMap((n) => [0, 1, 2, 3].map((w) => worker(n, w))));
    const done = await settleWithin(sim.clock, all, 60_000);
    expect(done.error).toBeUndefined();
    expect(acquisitions).toBe(48);
    expect(maxInside).toBe(limit);
    expect(maxInStore).toBeLessThanOrEqual(limit);
    expect(await semHolders()).toEqual([]);
  });

  it('lets one node hold several permits, and fails with LockHeldError naming the holders when full and not waiting', async () => {
    const [a, b] = await fleet(2);
    const semA = a!.cluster.semaphore('s', { limit: 2 });
    const p1 = await semA.acquire();
    const p2 = await semA.acquire();
    expect(new Set([p1.slot, p2.slot])).toEqual(new Set([0, 1]));
    const error = await b!.cluster.semaphore('s', { limit: 2 }).acquire({ wait: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockHeldError);
    expect((error as Error).message).toMatch(/^semaphore "s": all 2 permits held by node-1 \(.+\), node-1 \(.+\)$/);
    expect((error as LockHeldError).holders.map((h) => h.token).sort()).toEqual([p1.token, p2.token].sort());
    expect((await semA.holders()).map((h) => [h.slot, h.node])).toEqual([
      [0, 'node-1'],
      [1, 'node-1'],
    ]);
    await p1.release();
    await p2.release();
  });

  it('wakes a waiter when a permit is released, and its wait stops on its signal and on session loss', async () => {
    const [a, b, c] = await fleet(3);
    const held = await a!.cluster.semaphore('s', { limit: 1 }).acquire();
    const waiter = track(b!.cluster.semaphore('s', { limit: 1 }).acquire());
    const controller = new AbortController();
    const aborted = track(c!.cluster.semaphore('s', { limit: 1 }).acquire({ signal: controller.signal }));
    await sim.advance(1000);
    controller.abort(new Error('enough'));
    expect((await settleWithin(sim.clock, aborted.promise, 100, 1)).error).toMatchObject({ message: 'enough' });
    await held.release();
    const got = await settleWithin(sim.clock, waiter.promise, 100, 1);
    expect(got.tookMs).toBeLessThan(5);
    // Now c waits for b's permit, and c's session is lost meanwhile.
    const lost = track(c!.cluster.semaphore('s', { limit: 1 }).acquire());
    sim.backend.sever(c!.store);
    expect((await settleWithin(sim.clock, lost.promise, 5000)).error).toBeInstanceOf(SessionExpiredError);
    sim.backend.heal(c!.store);
    await got.value!.release();
    await sim.advance(3000);
    expect(await semHolders()).toEqual([]);
  });

  it('times out a Duration wait with LockHeldError', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.semaphore('s', { limit: 1 }).acquire();
    const got = await settleWithin(sim.clock, b!.cluster.semaphore('s', { limit: 1 }).acquire({ wait: 1500 }), 3000);
    expect(got.error).toBeInstanceOf(LockHeldError);
    expect((got.error as Error).message).toMatch(/^semaphore "s": all 1 permit still held by node-1 .+ after waiting 1\.5s$/);
    await held.release();
  });

  it('with nodes that disagree on limit, holds at most the largest limit; the smaller-limit node only uses its own slots', async () => {
    const [small, large] = await fleet(2);
    const permits = [];
    const big = large!.cluster.semaphore('s', { limit: 4 });
    for (let i = 0; i < 4; i++) permits.push(await big.acquire());
    await expect(small!.cluster.semaphore('s', { limit: 2 }).acquire({ wait: false })).rejects.toBeInstanceOf(LockHeldError);
    // Free a slot above the small limit: the small node still sees its two slots taken.
    const high = permits.find((p) => p.slot >= 2)!;
    await high.release();
    await expect(small!.cluster.semaphore('s', { limit: 2 }).acquire({ wait: false })).rejects.toBeInstanceOf(LockHeldError);
    // Free a slot below it: the small node takes it although 3 permits (more than its limit) are held.
    const low = permits.find((p) => p.slot < 2)!;
    await low.release();
    const mine = await small!.cluster.semaphore('s', { limit: 2 }).acquire({ wait: false });
    expect(mine.slot).toBe(low.slot);
    expect((await semHolders()).length).toBe(3);
    for (const p of [...permits, mine]) await p.release();
  });

  it('refuses a limit that is not an integer ≥ 1, naming the field, and unknown options', async () => {
    const [a] = await fleet(1);
    for (const limit of [0, -1, 1.5, Number.NaN, '3', undefined, 100_000]) {
      expect(() => a!.cluster.semaphore('s', { limit } as never)).toThrow(ConfigError);
      expect(() => a!.cluster.semaphore('s', { limit } as never)).toThrow(/^semaphore "s": limit must be an integer from 1 to 1000, got /);
    }
    expect(() => a!.cluster.semaphore('s', { limit: 2, max: 3 } as never)).toThrow(/unknown option "max"/);
    expect(() => a!.cluster.semaphore('s/x', { limit: 2 })).toThrow(/^semaphore name: expected/);
    await expect(a!.cluster.semaphore('s', { limit: 1 }).acquire({ wait: 'later' })).rejects.toThrow(/wait: expected a duration/);
  });
});
