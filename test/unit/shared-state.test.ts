/**
 * Shared state on the memory store with a fake clock: versions, compare-and-set races with exactly one
 * winner, size and JSON limits, and a watch that yields ordered versions and stops as documented.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, SessionExpiredError, ValueError } from '../../src/core/errors.js';
import type { Versioned } from '../../src/cluster/shared-state.js';
import { Sim, type SimNode } from '../helpers/sim.js';
import { settleWithin } from '../helpers/fake-wait.js';

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

/** Collects what a watch yields until `stop` aborts (or it throws). */
function collect<T>(iterable: AsyncIterable<Versioned<T>>): { seen: Versioned<T>[]; done: Promise<unknown> } {
  const seen: Versioned<T>[] = [];
  const done = (async () => {
    for await (const v of iterable) seen.push(v);
  })();
  return { seen, done };
}

describe('shared state', () => {
  it('reads undefined until written, then values with versions growing by one', async () => {
    const [a, b] = await fleet(2);
    const flag = a!.cluster.sharedState<{ on: boolean }>('flag');
    expect(await flag.get()).toBeUndefined();
    expect(await flag.set({ on: true })).toBe(1);
    expect(await b!.cluster.sharedState<{ on: boolean }>('flag').get()).toEqual({ value: { on: true }, version: 1 });
    expect(await flag.set({ on: false })).toBe(2);
    expect(await b!.cluster.sharedState('flag').get()).toEqual({ value: { on: false }, version: 2 });
    expect((await sim.observer.get('state/flag'))?.version).toBe(2);
  });

  it('CAS races: of 3 nodes creating, then of 3 nodes updating the same version, exactly one wins each time', async () => {
    const nodes = await fleet(3);
    const creates = await Promise.all(nodes.map((n) => n.cluster.sharedState<string>('leader-note').cas('absent', n.id)));
    expect(creates.filter(Boolean)).toHaveLength(1);
    const current = (await nodes[0]!.cluster.sharedState<string>('leader-note').get())!;
    expect(current.value).toBe(nodes[creates.indexOf(true)]!.id);
    const updates = await Promise.all(nodes.map((n) => n.cluster.sharedState<string>('leader-note').cas(current.version, `${n.id}!`)));
    expect(updates.filter(Boolean)).toHaveLength(1);
    expect((await nodes[1]!.cluster.sharedState<string>('leader-note').get())).toEqual({
      value: `${nodes[updates.indexOf(true)]!.id}!`,
      version: 2,
    });
    // A stale version loses, and so does 'absent' once written.
    expect(await nodes[2]!.cluster.sharedState<string>('leader-note').cas(1, 'late')).toBe(false);
    expect(await nodes[2]!.cluster.sharedState<string>('leader-note').cas('absent', 'late')).toBe(false);
  });

  it('refuses values over 64 KiB of JSON or not JSON at all, with a clear ValueError, writing nothing', async () => {
    const [a] = await fleet(1);
    const s = a!.cluster.sharedState<unknown>('blob');
    const big = 'x'.repeat(64 * 1024);
    const error = await s.set(big).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValueError);
    expect((error as ValueError).code).toBe('VALUE_INVALID');
    expect((error as Error).message).toMatch(/^state "blob": value is 65538 bytes of JSON, over the limit of 65536 \(64 KiB\)/);
    expect(await s.set('x'.repeat(64 * 1024 - 2))).toBe(1); // exactly the limit, with the quotes
    await expect(s.set(10n)).rejects.toThrow(/^state "blob": value is not JSON-serialisable/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(s.cas(1, cyclic)).rejects.toBeInstanceOf(ValueError);
    await expect(s.set(undefined)).rejects.toBeInstanceOf(ValueError);
    await expect(s.cas(0, 'x')).rejects.toBeInstanceOf(ConfigError);
    expect((await s.get())?.version).toBe(1);
    expect(() => a!.cluster.sharedState('a/b')).toThrow(/^state name: expected/);
  });

  it('watch yields the current value, then newer versions in order (never one twice), and ends quietly on its signal', async () => {
    const [a, b] = await fleet(2);
    const writer = a!.cluster.sharedState<number>('counter');
    await writer.set(0);
    const controller = new AbortController();
    const watch = collect(b!.cluster.sharedState<number>('counter').watch({ signal: controller.signal }));
    await sim.clock.advance(0);
    expect(watch.seen).toEqual([{ value: 0, version: 1 }]);
    for (let i = 1; i <= 5; i++) {
      await writer.set(i);
      await sim.clock.advance(10);
    }
    // Two quick writes between looks: the watch may skip the first, never goes back.
    await writer.set(6);
    await writer.set(7);
    await sim.advance(2000);
    const versions = watch.seen.map((v) => v.version);
    for (let i = 1; i < versions.length; i++) expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
    expect(watch.seen.slice(0, 6).map((v) => v.value)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(watch.seen.at(-1)).toEqual({ value: 7, version: 8 });
    controller.abort();
    expect((await settleWithin(sim.clock, watch.done, 100, 1)).error).toBeUndefined();
  });

  it('watch sees a change made by a node on another store handle through polling when no hint arrives', async () => {
    const [a] = await fleet(1);
    const seen = collect(a!.cluster.sharedState<string>('x').watch());
    await sim.clock.advance(0);
    // Written while a's handle is severed: the hint for that write never reaches a (lost hints happen on
    // real stores too, e.g. across a reconnect). The bounded poll finds the change anyway.
    sim.backend.sever(a!.store);
    await sim.observer.put('state/x', 'quiet');
    sim.backend.heal(a!.store);
    await sim.advance(1000);
    expect(seen.seen).toEqual([{ value: 'quiet', version: 1 }]);
    await a!.cluster.close();
    await settleWithin(sim.clock, seen.done, 100, 1); // ends quietly when the cluster closes
  });

  it('watch throws SessionExpiredError when the node\'s session is lost', async () => {
    const [a] = await fleet(1);
    const watch = collect(a!.cluster.sharedState<string>('x').watch());
    await sim.clock.advance(0);
    sim.backend.sever(a!.store);
    const result = await settleWithin(sim.clock, watch.done, 5000);
    expect(result.error).toBeInstanceOf(SessionExpiredError);
    expect((result.error as Error).message).toMatch(/^state "x": watch stopped: /);
    sim.backend.heal(a!.store);
  });
});
