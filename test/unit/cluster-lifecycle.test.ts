/**
 * start() and close() (DESIGN.md invariant 5): close() releases everything, and nothing of the node keeps
 * running once it resolves — also when it races start(), when the store is unreachable, or when a
 * handler is slow to honour its signal.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { BatonError, ClosedError } from '../../src/core/errors.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

/** Settles `promise` while advancing fake time in small steps; returns how long it took and how it ended. */
async function settleWithin<T>(promise: Promise<T>, maxMs: number, step = 10): Promise<{ tookMs: number; error?: unknown }> {
  let outcome: { error?: unknown } | undefined;
  promise.then(
    () => (outcome = {}),
    (error: unknown) => (outcome = { error }),
  );
  const start = sim.clock.monotonic();
  await sim.clock.advance(0);
  while (!outcome && sim.clock.monotonic() - start < maxMs) await sim.clock.advance(step);
  if (!outcome) throw new Error(`did not settle within ${maxMs}ms of fake time`);
  return { tookMs: sim.clock.monotonic() - start, ...outcome };
}

describe('close()', () => {
  it('leaves no session, no key and no timer, and nothing of the node runs afterwards', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }], ['other', { cron: '*/2 * * * * *' }]]);
    await sim.advance(4500);
    expect(sim.starts.length).toBeGreaterThan(0);
    await a.cluster.close();
    expect(a.cluster.state).toBe('closed');
    expect(await sim.observer.listSessions()).toEqual([]);
    expect(await sim.observer.listHolders('')).toEqual([]);
    expect(sim.clock.pendingTimers).toBe(0);
    const runs = sim.starts.length;
    const calls = a.calls.length;
    await sim.advance(10_000);
    expect(sim.starts.length).toBe(runs);
    expect(a.calls.length).toBe(calls);
    await a.cluster.close(); // twice is harmless
  });

  it('lets a node without tasks join, show up in status, and leave', async () => {
    sim = new Sim();
    const worker = await sim.node('worker', [['sync', { every: '1s' }]]);
    const idle = await sim.node('idle', []);
    await sim.advance(5000);
    const status = await idle.cluster.status();
    expect(status.nodes.map((n) => n.id).sort()).toEqual(['idle', 'worker']);
    expect(status.nodes.find((n) => n.id === 'idle')!.owns).toEqual([]);
    expect(sim.starts.every((s) => s.node === 'worker')).toBe(true);
    await idle.cluster.close();
    expect((await worker.cluster.status()).nodes.map((n) => n.id)).toEqual(['worker']);
  });

  it('works before start(), and start() is refused afterwards', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }]], { start: false });
    await a.cluster.close();
    expect(a.cluster.state).toBe('closed');
    await expect(a.cluster.start()).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await sim.advance(3000);
    expect(await sim.observer.listSessions()).toEqual([]);
    expect(sim.starts).toEqual([]);
  });

  it('called while start() is opening the session, leaves nothing running once it resolves', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }]], { start: false });
    const starting = a.cluster.start();
    const startOutcome = starting.then(
      () => undefined,
      (error: unknown) => error,
    );
    await a.cluster.close();
    expect(a.cluster.state).toBe('closed');
    // start() tells its caller that it did not start.
    const error = await startOutcome;
    expect(error).toBeInstanceOf(ClosedError);
    expect((error as BatonError).code).toBe('CLOSED');
    expect(await sim.observer.listSessions()).toEqual([]);
    expect(sim.clock.pendingTimers).toBe(0);
    await sim.advance(5000);
    expect(sim.starts).toEqual([]);
    expect(await sim.observer.listSessions()).toEqual([]);
    expect(await sim.observer.listHolders('')).toEqual([]);
  });

  it('returns promptly during a store outage instead of waiting for the lease deadline, and starts no run', async () => {
    sim = new Sim();
    await sim.node('a', [['sync', { every: '1s' }, (ctx) => sleep(sim.clock, 300, ctx.signal)]]);
    await sim.node('b', [['sync', { every: '1s' }]]);
    await sim.advance(6000);
    const owner = sim.nodes.find((n) => n.id === (sim.starts.at(-1)?.node ?? 'a'))!;
    // The owner cannot claim the next tick: it retries while the store is away.
    sim.backend.sever(owner.store);
    await sim.advance(1300);
    expect(owner.of('error').length).toBeGreaterThan(0);
    const runsBefore = sim.starts.filter((s) => s.node === owner.id).length;

    const closing = owner.cluster.close();
    sim.backend.heal(owner.store); // the store comes back right away: the retry must not claim a tick now
    const { tookMs, error } = await settleWithin(closing, 3000);
    expect(error).toBeUndefined();
    expect(tookMs).toBeLessThanOrEqual(50);
    expect(sim.starts.filter((s) => s.node === owner.id).length).toBe(runsBefore);
    expect(owner.cluster.state).toBe('closed');
    // Released cleanly: the other node takes over at once and runs on.
    await sim.advance(1500);
    expect(sim.starts.at(-1)!.node).not.toBe(owner.id);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });

  it('during an outage that lasts, settles at once, stops everything and leaves the keys to the TTL', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }]]);
    await sim.advance(2500);
    sim.backend.sever(a.store);
    await sim.advance(800);
    const { tookMs, error } = await settleWithin(a.cluster.close(), 3000);
    expect(tookMs).toBeLessThanOrEqual(50);
    // The session could not be closed in the store: close() says so.
    expect(error).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(a.cluster.state).toBe('closed');
    expect(sim.clock.pendingTimers).toBe(0);
    const calls = a.calls.length;
    sim.backend.heal(a.store);
    await sim.advance(4000);
    expect(a.calls.length).toBe(calls);
    expect(await sim.observer.listSessions()).toEqual([]); // expired by its TTL
  });

  it('waits for a handler that ignores its signal, and resolves when it ends', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['stubborn', { every: '1s' }, () => sleep(sim.clock, 2000)]]);
    await sim.advance(1200);
    expect(sim.starts).toHaveLength(1);
    const { tookMs, error } = await settleWithin(a.cluster.close(), 5000);
    expect(error).toBeUndefined();
    expect(tookMs).toBeGreaterThanOrEqual(1700);
    expect(tookMs).toBeLessThanOrEqual(1900);
    expect(sim.starts).toHaveLength(1);
    expect(await sim.observer.listSessions()).toEqual([]);
  });
});
