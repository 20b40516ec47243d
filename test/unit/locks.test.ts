/**
 * Cluster-wide locks on the memory store with a fake clock: mutual exclusion and increasing tokens across
 * nodes and within a node, waiters woken by releases, self-fencing before another node gets the lock, and
 * waits that stop on their signal, on session loss and on close without leaving a key behind.
 */
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { BatonError, ClosedError, ConfigError, LockHeldError, NotOwnerError, SessionExpiredError } from '../../src/core/errors.js';
import type { LockHandle } from '../../src/cluster/lock.js';
import { Sim, type SimNode } from '../helpers/sim.js';
import { settleWithin, track } from '../helpers/fake-wait.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

/** Three started nodes without tasks (ttl 3s, renewEvery 1s, safety margin 600ms, scanEvery 750ms). */
async function fleet(n = 3): Promise<SimNode[]> {
  sim = new Sim();
  const nodes: SimNode[] = [];
  for (let i = 0; i < n; i++) nodes.push(await sim.node(`node-${i + 1}`, []));
  return nodes;
}

const lockHolders = () => sim.observer.listHolders('lock/');

describe('locks: cost', () => {
  it('costs one store call to acquire and one to release, and makes no node re-read placement', async () => {
    const [a, b] = await fleet(2);
    await sim.advance(5000); // placement settles, then nothing is due for a while
    const start = [a!.calls.length, b!.calls.length];
    for (let i = 0; i < 20; i++) {
      const lock = await a!.cluster.lock('hot', { wait: false });
      await lock.release();
    }
    await sim.advance(1); // deliver the hints of the last release
    const methods = (node: SimNode, from: number) => node.calls.slice(from).map((c) => c.method);
    // Each acquire and release hints 'owners' to every node; a placement scan (listSessions +
    // listHolders) for a lock key would double the store's work per lock on every node.
    expect(methods(a!, start[0]!)).toEqual(Array.from({ length: 20 }, () => ['tryAcquire', 'release']).flat());
    expect(methods(b!, start[1]!)).toEqual([]);
  });
});

describe('locks: mutual exclusion and tokens', () => {
  it('never lets two holders in at once across 3 nodes, and every acquisition has a greater token', async () => {
    const nodes = await fleet();
    let inside = 0;
    let maxInside = 0;
    const tokens: bigint[] = [];
    const worker = async (node: SimNode, rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        await using lock = await node.cluster.lock('report');
        inside += 1;
        maxInside = Math.max(maxInside, inside);
        tokens.push(lock.token);
        expect(lock.isHeld()).toBe(true);
        await sleep(sim.clock, 37 + 13 * i);
        inside -= 1;
      }
    };
    const all = Promise.all(nodes.map((n) => worker(n, 5)));
    const done = await settleWithin(sim.clock, all, 60_000);
    expect(done.error).toBeUndefined();
    expect(maxInside).toBe(1);
    expect(tokens).toHaveLength(15);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
    expect(await lockHolders()).toEqual([]);
  });

  it('keeps two callers of the same node apart (the store would give both the same token) and not re-entrant', async () => {
    const [a] = await fleet(1);
    const first = await a!.cluster.lock('x');
    const second = track(a!.cluster.lock('x'));
    await sim.advance(2000);
    expect(second.settled).toBe(false);
    await expect(a!.cluster.lock('x', { wait: false })).rejects.toBeInstanceOf(LockHeldError);
    await first.release();
    const got = await settleWithin(sim.clock, second.promise, 100, 1);
    expect(got.tookMs).toBeLessThan(10);
    expect(got.value!.token > first.token).toBe(true);
    expect((await lockHolders()).map((h) => h.token)).toEqual([got.value!.token]);
    await got.value!.release();
  });

  it('treats namespaces as separate lock domains', async () => {
    const [a, b] = await fleet(2);
    const one = await a!.cluster.lock('x', { namespace: 'billing' });
    const two = await b!.cluster.lock('x', { namespace: 'reports' });
    const three = await b!.cluster.lock('x');
    expect((await lockHolders()).map((h) => h.key)).toEqual(['lock/billing/x', 'lock/default/x', 'lock/reports/x']);
    for (const l of [one, two, three]) await l.release();
  });
});

describe('locks: waiting', () => {
  it('wakes a waiter on another node as soon as the holder releases (store hint, not the poll)', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const waiter = track(b!.cluster.lock('x'));
    await sim.advance(5000);
    expect(waiter.settled).toBe(false);
    const releasedAt = sim.clock.monotonic();
    await held.release();
    expect(held.signal.aborted).toBe(true);
    const got = await settleWithin(sim.clock, waiter.promise, 1000, 1);
    expect(got.tookMs).toBeLessThan(5); // the poll is 750ms: this was the watch hint
    expect(sim.clock.monotonic() - releasedAt).toBeLessThan(5);
    expect(got.value!.token > held.token).toBe(true);
    await got.value!.release();
  });

  it('fails at once with LockHeldError naming the holder node, host and pid when wait is false', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const error = await b!.cluster.lock('x', { wait: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockHeldError);
    expect((error as LockHeldError).code).toBe('LOCK_HELD');
    expect((error as Error).message).toBe(`lock "x": held by node-1 (${hostname()}:${process.pid})`);
    expect((error as LockHeldError).holder).toMatchObject({ node: 'node-1', pid: process.pid, token: held.token });
    const inNamespace = await b!.cluster.lock('y', { namespace: 'ns' }).then(async (l) => {
      const e = await a!.cluster.lock('y', { namespace: 'ns', wait: 0 }).catch((err: unknown) => err);
      await l.release();
      return e;
    });
    expect((inNamespace as Error).message).toBe(`lock "ns/y": held by node-2 (${hostname()}:${process.pid})`);
    await held.release();
  });

  it('gives up after a wait Duration with LockHeldError, polling rather than spinning', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const acquiresBefore = b!.calls.filter((c) => c.method === 'tryAcquire').length;
    const got = await settleWithin(sim.clock, b!.cluster.lock('x', { wait: '2s' }), 5000);
    expect(got.error).toBeInstanceOf(LockHeldError);
    expect((got.error as Error).message).toMatch(/^lock "x": still held by node-1 \(.+\) after waiting 2(\.0+)?s$/);
    expect(got.tookMs).toBeGreaterThanOrEqual(2000);
    expect(got.tookMs).toBeLessThan(2100);
    // A bounded poll (scanEvery 750ms) plus hints from unrelated changes: a handful of attempts, no hot loop.
    const attempts = b!.calls.filter((c) => c.method === 'tryAcquire').length - acquiresBefore;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(8);
    await held.release();
  });

  it('stops a wait when its signal aborts, with the signal reason, leaving no key behind', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const controller = new AbortController();
    const waiter = track(b!.cluster.lock('x', { signal: controller.signal }));
    await sim.advance(1000);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    const got = await settleWithin(sim.clock, waiter.promise, 100, 1);
    expect(got.error).toBe(reason);
    await held.release();
    await sim.advance(2000);
    expect(await lockHolders()).toEqual([]);
    // An already aborted signal: not even one attempt.
    await expect(b!.cluster.lock('x', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('gives the lock back when the wait is aborted while the acquisition is in flight', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const controller = new AbortController();
    const waiter = track(b!.cluster.lock('x', { signal: controller.signal }));
    await sim.advance(100);
    // Abort at the instant the store grants b the key (the second owner change after a's release).
    let changes = 0;
    const unwatch = sim.observer.watch((change) => {
      if (change.scope === 'owners' && change.key === 'lock/default/x' && ++changes === 2) controller.abort(new Error('too late'));
    });
    await held.release();
    const got = await settleWithin(sim.clock, waiter.promise, 100, 1);
    unwatch();
    expect(changes).toBeGreaterThanOrEqual(2);
    expect(got.error).toMatchObject({ message: 'too late' });
    expect(await lockHolders()).toEqual([]);
    // b can take it again later, with a fresh token.
    const again = await b!.cluster.lock('x');
    expect(again.token > held.token + 1n).toBe(true);
    await again.release();
  });

  it('stops a wait whose own session is lost with SessionExpiredError (no zombie waiter), and it never takes the lock later', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const waiter = track(b!.cluster.lock('x'));
    await sim.advance(500);
    const cutAt = sim.clock.monotonic();
    sim.backend.sever(b!.store);
    const got = await settleWithin(sim.clock, waiter.promise, 5000);
    expect(got.error).toBeInstanceOf(SessionExpiredError);
    expect((got.error as Error).message).toMatch(/^lock "x": gave up waiting: session .+/);
    // It stopped at b's local deadline (≤ ttl − safety margin after its last renewal), not at some later poll.
    expect(sim.clock.monotonic() - cutAt).toBeLessThanOrEqual(2400);
    sim.backend.heal(b!.store);
    await held.release();
    await sim.advance(5000);
    expect(await lockHolders()).toEqual([]);
  });

  it('a node whose session is lost has its lock signal aborted before another node gets the lock', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    let abortedAt: number | undefined;
    held.signal.addEventListener('abort', () => (abortedAt = sim.clock.monotonic()));
    const waiter = track(b!.cluster.lock('x'));
    let acquiredAt: number | undefined;
    void waiter.promise.then(() => (acquiredAt = sim.clock.monotonic()));
    await sim.advance(200);
    sim.backend.sever(a!.store); // a is cut off: it cannot renew, nor release
    await sim.until(() => acquiredAt !== undefined, 10_000);
    expect(abortedAt).toBeDefined();
    expect(abortedAt!).toBeLessThan(acquiredAt!);
    expect(held.isHeld()).toBe(false);
    expect(() => held.assertHeld()).toThrow(NotOwnerError);
    expect((held.signal.reason as Error)).toBeInstanceOf(SessionExpiredError);
    const taken = waiter.value!;
    expect(taken.token > held.token).toBe(true);
    // The lost handle's release is harmless; the new holder keeps the lock.
    sim.backend.heal(a!.store);
    await held.release();
    expect((await lockHolders()).map((h) => h.token)).toEqual([taken.token]);
    await taken.release();
  });

  it('refuses a zombie holder\'s guarded write once another node holds the lock', async () => {
    const [a, b] = await fleet(2);
    const state = a!.cluster.sharedState<string>('cursor');
    const zombie = await a!.cluster.lock('x');
    expect(await state.set('from a', { guard: zombie.guard })).toBe(1);
    // The store drops a's session behind its back (an operator, a store failover): a still believes it holds x.
    await sim.observer.closeSession((await sim.observer.listSessions()).find((s) => s.info.id === 'node-1')!.id);
    const owner = await b!.cluster.lock('x', { wait: false });
    await b!.cluster.sharedState<string>('cursor').set('from b', { guard: owner.guard });
    await expect(state.set('zombie', { guard: zombie.guard })).rejects.toBeInstanceOf(NotOwnerError);
    expect((await state.get())?.value).toBe('from b');
    await owner.release();
  });
});

describe('locks: release', () => {
  it('releases at the end of an `await using` scope, also when the scope throws', async () => {
    const [a] = await fleet(1);
    let signal: AbortSignal | undefined;
    {
      await using lock = await a!.cluster.lock('x');
      signal = lock.signal;
      expect(await lockHolders()).toHaveLength(1);
    }
    expect(signal.aborted).toBe(true);
    expect(await lockHolders()).toEqual([]);
    const failing = async () => {
      await using lock = await a!.cluster.lock('x');
      void lock;
      throw new Error('boom');
    };
    await expect(failing()).rejects.toThrow('boom');
    expect(await lockHolders()).toEqual([]);
  });

  it('withLock runs the function under the lock and releases it, returning its value or its error', async () => {
    const [a, b] = await fleet(2);
    const value = await a!.cluster.withLock('x', async (lock: LockHandle) => {
      await expect(b!.cluster.lock('x', { wait: false })).rejects.toBeInstanceOf(LockHeldError);
      return lock.token;
    });
    expect(typeof value).toBe('bigint');
    await expect(a!.cluster.withLock('x', { wait: false }, () => Promise.reject(new Error('inner')))).rejects.toThrow('inner');
    expect(await lockHolders()).toEqual([]);
  });

  it('release() is idempotent and never throws; a release the store did not confirm is retried in the background', async () => {
    const [a, b] = await fleet(2);
    const lock = await a!.cluster.lock('x');
    sim.backend.sever(a!.store);
    await lock.release(); // store unreachable: resolves anyway
    await lock.release();
    expect(lock.signal.aborted).toBe(true);
    sim.backend.heal(a!.store); // back well before a's session is in danger
    const got = await settleWithin(sim.clock, b!.cluster.lock('x'), 2000);
    expect(got.tookMs).toBeLessThanOrEqual(800); // the background retry (every scanEvery = 750ms) freed it
    expect(got.value!.token > lock.token).toBe(true);
    await got.value!.release();
    // And a's next lock gets a fresh, greater token.
    const again = await a!.cluster.lock('x');
    expect(again.token > got.value!.token).toBe(true);
    await again.release();
  });

  it('releases every lock when the node closes, and a waiter on the closing node stops with ClosedError', async () => {
    const [a, b] = await fleet(2);
    const held = await a!.cluster.lock('x');
    const otherHeld = await b!.cluster.lock('y');
    const waiter = track(a!.cluster.lock('y'));
    const remote = track(b!.cluster.lock('x'));
    await sim.advance(100);
    await a!.cluster.close();
    expect(held.signal.aborted).toBe(true);
    const got = await settleWithin(sim.clock, waiter.promise, 100, 1);
    expect(got.error).toBeInstanceOf(ClosedError);
    const taken = await settleWithin(sim.clock, remote.promise, 100, 1);
    expect(taken.value!.token > held.token).toBe(true);
    await taken.value!.release();
    await otherHeld.release();
    await expect(a!.cluster.lock('x')).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });
});

describe('locks: bad input', () => {
  it('refuses bad names, namespaces, options and a per-lock ttl it cannot honour, naming the field', async () => {
    const [a] = await fleet(1);
    await expect(a!.cluster.lock('a/b')).rejects.toThrow(/^lock name: expected/);
    await expect(a!.cluster.lock('x', { namespace: 'a/b' })).rejects.toThrow(/^lock "x": namespace: expected/);
    await expect(a!.cluster.lock('x', { timeout: 5 } as never)).rejects.toThrow(/^lock "x": unknown option "timeout"/);
    await expect(a!.cluster.lock('x', { wait: 'soon' })).rejects.toThrow(/^lock "x": wait: expected a duration/);
    const ttl = await a!.cluster.lock('x', { ttl: '10s' }).catch((e: unknown) => e);
    expect(ttl).toBeInstanceOf(ConfigError);
    expect((ttl as Error).message).toMatch(/ttl \(10000ms\) cannot differ from the cluster's session ttl \(3000ms\)/);
    // Equal to the session ttl: accepted, it says what happens anyway.
    const lock = await a!.cluster.lock('x', { ttl: '3s' });
    await lock.release();
  });

  it('is usable only while the cluster runs (INVALID_STATE)', async () => {
    sim = new Sim();
    const idle = await sim.node('idle', [], { start: false });
    const error = await idle.cluster.lock('x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).code).toBe('INVALID_STATE');
    expect(() => idle.cluster.semaphore('s', { limit: 1 })).toThrow(/needs a running cluster/);
    expect(() => idle.cluster.sharedState('s')).toThrow(/needs a running cluster/);
    expect(() => idle.cluster.elections()).toThrow(/needs a running cluster/);
  });
});
