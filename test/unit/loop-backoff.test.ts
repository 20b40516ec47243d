/**
 * Background loops back off while the store fails: a store that answers every call with an error at once
 * is not asked in a hot loop (a standby once logged 765 failed placement scans in 1.1 s, because a task
 * free for longer than `claimDelay` re-armed the scan at once after each failure). One test per loop, on
 * the memory store and a FakeClock, most with hints arriving every 10 ms meanwhile: calls per fake second
 * bounded by the loop's back-off, then recovery once the store answers. docs/reliability.md lists them.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyLayout } from '../../src/stores/etcd/keys.js';
import { EtcdWatch } from '../../src/stores/etcd/watch.js';
import { ControlWatch } from '../../src/scheduler/control-watch.js';
import { ownerKey, TRIGGER_PREFIX } from '../../src/scheduler/keys.js';
import { queuePrefix } from '../../src/scheduler/queue.js';
import type { Change } from '../../src/stores/contract.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';
import { failCalls, recordingStore, Sim, testNodeInfo, type SimNode } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll(); // closing twice (tests without a Sim of their own) is harmless
});

/**
 * Two nodes declaring task x; x's owner (its preferred node) is cut off and x freed behind its back. The
 * owner stays alive in the store (TTL 20 s) and preferred, so the standby waits claimDelay before standing in.
 */
async function standbyOfFreeTask(claimDelay: number): Promise<SimNode> {
  sim = new Sim();
  const options = { ttl: 20_000, cluster: { claimDelay, scanEvery: 1000 } };
  const nodes = [await sim.node('a', [['x', { every: '1h' }]], options), await sim.node('b', [['x', { every: '1h' }]], options)];
  await sim.until(async () => (await sim.owners()).get('x') !== undefined, 10_000);
  const ownerId = (await sim.owners()).get('x');
  const preferred = nodes.find((n) => n.id === ownerId)!;
  sim.backend.sever(preferred.store);
  const holder = await sim.observer.holder(ownerKey('x' as UnitName));
  await sim.observer.release(holder!.key, holder!.token);
  return nodes.find((n) => n.id !== ownerId)!;
}

describe('placement scan', () => {
  it('backs off after failed scans, though a task has been free longer than claimDelay', async () => {
    const standby = await standbyOfFreeTask(2000);
    await sim.advance(1200, 10); // the standby's next scan sees x free
    // … and then its store fails too, for longer than claimDelay.
    sim.backend.sever(standby.store);
    // A scan reads the store (its view of sessions and owners) or claims x: either fails now.
    const scans = () => standby.calls.filter((c) => ['listHolders', 'listSessions', 'holder', 'tryAcquire', 'tryAcquireMany'].includes(c.method)).length;
    const failures = () => standby.of('error').filter((e) => e.where === 'placement scan' || e.where === 'acquire task "x"').length;
    const [scansBefore, failuresBefore] = [scans(), failures()];
    await sim.advance(4000, 5);
    const during = scans() - scansBefore;
    // scanEvery alone gives 4 in 4 s; the back-off (50 ms doubling up to scanEvery) adds a handful.
    expect(during).toBeGreaterThanOrEqual(4);
    expect(during).toBeLessThanOrEqual(12);
    expect(failures() - failuresBefore).toBe(during);
    // Once the store answers again, the standby takes x within a scan or two.
    sim.backend.heal(standby.store);
    await sim.until(async () => (await sim.owners()).get('x') === standby.id, 3000);
  });

  it('backs off while the store lists but refuses to claim (acquisitions failing)', { timeout: 10_000 }, async () => {
    const standby = await standbyOfFreeTask(300);
    // Placement claims in batches (tryAcquireMany), here a batch of one.
    const heal = failCalls(standby.store, ['tryAcquireMany']);
    const claims = () => standby.calls.filter((c) => c.method === 'tryAcquireMany').length;
    await sim.advance(500, 5); // x is free for longer than claimDelay now
    const before = claims();
    await sim.advance(4000, 5);
    const during = claims() - before;
    // Without the back-off every failed claim re-armed the scan at once (x still free past claimDelay):
    // thousands of claims a second. With it: a handful, then one per scanEvery (1 s).
    expect(during).toBeGreaterThanOrEqual(4);
    expect(during).toBeLessThanOrEqual(12);
    expect(standby.of('error').filter((e) => e.where === 'acquire task "x"').length).toBeGreaterThanOrEqual(during);
    heal();
    await sim.until(async () => (await sim.owners()).get('x') === standby.id, 2000);
  });

  it('does not spin while the node has no session, though a task has been free longer than claimDelay', { timeout: 10_000 }, async () => {
    const standby = await standbyOfFreeTask(25_000);
    // The standby loses its session and cannot open another (listing still works) before x has been
    // free for claimDelay…
    const heal = failCalls(standby.store, ['renewSession', 'openSession']);
    await sim.until(() => standby.of('session:lost').length > 0, 20_000, 50);
    await sim.advance(6000, 50); // … and now it has.
    // A scan without a session returns at once; re-armed at 0 ms after each, it kept the fake clock from
    // ever getting past this advance (the test timed out; in real time: a spinning event loop).
    const before = sim.clock.monotonic();
    await sim.advance(2000, 5);
    expect(sim.clock.monotonic() - before).toBe(2000);
    heal();
    // The next session opens after the keeper's back-off (up to the TTL, 20 s), then takes x at once.
    await sim.until(async () => (await sim.owners()).get('x') === standby.id, 21_000, 50);
  });
});

describe('control watch', () => {
  it('backs off after failed looks at the controls, whatever key-less hints arrive, and looks again once the store answers', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const handle = backend.connect('controls');
    const recorded = recordingStore(handle, clock);
    // A store that only sees "something changed" (SQLite's poll), and says so every 10 ms.
    let hint: ((change: Change) => void) | undefined;
    const store = new Proxy(recorded.store, {
      get: (target, prop) =>
        prop === 'watch' ? (listener: (change: Change) => void) => ((hint = listener), () => (hint = undefined)) : (Reflect.get(target, prop) as unknown),
    });
    const errors: Error[] = [];
    const watch = new ControlWatch({ store, clock, onError: (e) => errors.push(e) });
    watch.start();
    const { waker } = watch.subscribe('x', 'x');
    const hintFor = async (ms: number) => {
      for (let t = 0; t < ms; t += 10) {
        hint?.({ scope: 'any' });
        await clock.advance(10);
      }
    };
    const looks = () => recorded.count('list') / 2; // one look lists triggers and pauses
    await hintFor(2000);
    expect(looks()).toBeLessThanOrEqual(3); // coalesced: once per second
    const heal = failCalls(handle, ['list']);
    const before = looks();
    await hintFor(20_000);
    // coalesceMs (1 s) alone gives 20 looks in 20 s; the back-off (1 s doubling up to 5 s): at most 8.
    const failed = looks() - before;
    expect(failed).toBeGreaterThanOrEqual(4);
    expect(failed).toBeLessThanOrEqual(8);
    expect(errors.length).toBe(Math.round(failed));
    heal();
    await backend.connect('controls').put(`${TRIGGER_PREFIX}x/1`, { requestedAt: 0 });
    let woken = false;
    void waker.wait(60_000, new AbortController().signal).then((w) => (woken = w));
    for (let t = 0; t < 6000 && !woken; t += 10) await hintFor(10);
    expect(woken).toBe(true);
    watch.close();
  });
});

describe('election stream', () => {
  it('backs off after failed reads of the owners, however many hints arrive, and follows again once the store answers', async () => {
    sim = new Sim();
    const options = { ttl: 20_000, cluster: { rebalanceAfter: 600_000 } };
    const a = await sim.node('a', [['sync', { every: '1h' }]], options);
    await sim.until(async () => (await sim.owners()).get('sync') === 'a', 5000);
    const b = await sim.node('b', [['sync', { every: '1h' }]], options);
    const events: { role: string; owner: string | null }[] = [];
    const stop = new AbortController();
    const done = (async () => {
      for await (const e of b.cluster.elections({ signal: stop.signal })) events.push({ role: e.role, owner: e.owner?.node ?? null });
    })();
    await sim.advance(500);
    expect(events).toEqual([{ role: 'follower', owner: 'a' }]);
    // An owner key of another session changes every 10 ms: a hint each time, for every node.
    const churn = await sim.observer.openSession(testNodeInfo('churn'), 60_000);
    const hintFor = async (ms: number) => {
      for (let t = 0; t < ms; t += 10) {
        const taken = await sim.observer.tryAcquire('task/churn', churn.id);
        if (taken.acquired) await sim.observer.release('task/churn', taken.token);
        await sim.clock.advance(10);
      }
    };
    const reads = () => b.calls.filter((c) => c.method === 'listSessions').length;
    const heal = failCalls(b.store, ['listSessions']);
    const before = reads();
    await hintFor(4000);
    // Per hint, that was 400 reads in 4 s. Now the stream's back-off (100 ms doubling up to scanEvery,
    // 1 s) and the placement scan's (50 ms doubling up to 1 s): at most 10 each.
    const during = reads() - before;
    expect(during).toBeLessThanOrEqual(20);
    const reported = b.of('error').filter((e) => e.where === 'elections').length;
    expect(reported).toBeGreaterThanOrEqual(4);
    expect(reported).toBeLessThanOrEqual(10);
    heal();
    await a.cluster.close();
    await sim.until(() => events.some((e) => e.role === 'leader'), 5000);
    stop.abort();
    await done;
  });
});

describe('lock waits and shared-state watches', () => {
  /** Two nodes with a long TTL (sessions outlive the test's outage), scanEvery 1 s. */
  async function pair(): Promise<[SimNode, SimNode]> {
    sim = new Sim();
    const options = { ttl: 20_000 };
    return [await sim.node('a', [], options), await sim.node('b', [], options)];
  }

  it('a lock wait backs off after failed attempts, whatever hints arrive, and takes the lock once the store answers', async () => {
    const [a, b] = await pair();
    const held = await a.cluster.lock('L');
    const waiting = b.cluster.lock('L', { wait: '1m' });
    await sim.advance(100);
    const attempts = () => b.calls.filter((c) => c.method === 'tryAcquire').length;
    const heal = failCalls(b.store, ['tryAcquire']);
    const before = attempts();
    // A session opens and closes every 10 ms: a hint each time, which a lock wait listens to.
    for (let t = 0; t < 4000; t += 10) {
      const { id } = await sim.observer.openSession(testNodeInfo('churn'), 60_000);
      await sim.observer.closeSession(id);
      await sim.clock.advance(10);
    }
    // Per hint, that was 400 attempts in 4 s; with the back-off (100 ms doubling up to 1 s): at most 10.
    const during = attempts() - before;
    expect(during).toBeGreaterThanOrEqual(4);
    expect(during).toBeLessThanOrEqual(10);
    expect(b.of('error').filter((e) => e.where === 'lock "L"').length).toBe(during);
    heal();
    await held.release();
    const lock = await settle(waiting, 3000);
    expect(lock.token).toBeGreaterThan(held.token);
    await lock.release();
  });

  it('a shared-state watch backs off after failed reads, whatever hints arrive, and sees the newest value once the store answers', async () => {
    const [a, b] = await pair();
    const state = a.cluster.sharedState<number>('S');
    await state.set(0);
    const seen: number[] = [];
    const stop = new AbortController();
    const done = (async () => {
      for await (const { value } of b.cluster.sharedState<number>('S').watch({ signal: stop.signal })) seen.push(value);
    })();
    await sim.advance(100);
    expect(seen).toEqual([0]);
    const reads = () => b.calls.filter((c) => c.method === 'get').length;
    const heal = failCalls(b.store, ['get']);
    const before = reads();
    for (let t = 1; t <= 400; t++) {
      await state.set(t); // a hint for the watched key every 10 ms
      await sim.clock.advance(10);
    }
    const during = reads() - before;
    expect(during).toBeGreaterThanOrEqual(4);
    expect(during).toBeLessThanOrEqual(10);
    expect(b.of('error').filter((e) => e.where.startsWith('state "S"')).length).toBe(during);
    heal();
    await sim.until(() => seen.at(-1) === 400, 2000);
    stop.abort();
    await done;
  });
});

/** Advances the fake clock until `promise` settles (at most `maxMs`), and returns its value. */
async function settle<T>(promise: Promise<T>, maxMs: number): Promise<T> {
  let result: { value: T } | undefined;
  let failure: { error: unknown } | undefined;
  promise.then((value) => (result = { value }), (error: unknown) => (failure = { error }));
  await sim.until(() => result !== undefined || failure !== undefined, maxMs);
  if (failure) throw failure.error;
  return result!.value;
}

describe('dispatch consumer', () => {
  it('backs off after failed looks at the queue, whatever hints arrive, and consumes again once the store answers', async () => {
    sim = new Sim();
    const consumed: number[] = [];
    let produce = false;
    const handlers = {
      produce: async (ctx: { enqueue(payload: number): Promise<boolean> }) => void (produce && (await ctx.enqueue(7))),
      consume: async (item: { payload: number }) => void consumed.push(item.payload),
    };
    const node = await sim.node('a', [['q', { every: '1h', mode: 'dispatch' }, handlers as never]], { ttl: 20_000 });
    await sim.advance(500);
    const looks = () => node.calls.filter((c) => c.method === 'list' && String(c.args[0]).startsWith(queuePrefix('q' as TaskName))).length;
    const heal = failCalls(node.store, ['list']);
    const before = looks();
    // A record under the queue's prefix changes every 10 ms: a hint each time.
    for (let t = 0; t < 4000; t += 10) {
      await sim.observer.put(`${queuePrefix('q' as TaskName)}zz-not-an-item`, t);
      await sim.clock.advance(10);
    }
    await sim.observer.delete(`${queuePrefix('q' as TaskName)}zz-not-an-item`);
    // Per hint (coalesced to 200 ms) that was 20 looks in 4 s; with the back-off (200 ms doubling up
    // to 5 s): at most 6.
    const during = looks() - before;
    expect(during).toBeGreaterThanOrEqual(3);
    expect(during).toBeLessThanOrEqual(6);
    expect(node.of('error').filter((e) => e.where === 'task "q": queue').length).toBe(during);
    heal();
    produce = true;
    await node.cluster.trigger('q');
    await sim.until(() => consumed.includes(7), 6000);
  });
});

describe('etcd watch re-creation', () => {
  it('re-creates a watch etcd keeps cancelling with a growing pause, and from the first pause again once one holds', async () => {
    const clock = new FakeClock();
    const created: EventEmitter[] = [];
    // Just enough of the etcd3 client for EtcdWatch: every watch it creates is an emitter the test drives.
    const client = {
      watch: () => ({
        prefix: () => ({
          watcher: () => {
            const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
            created.push(watcher);
            return watcher;
          },
        }),
      }),
    };
    const watch = new EtcdWatch(client as never, new KeyLayout('/baton', 'c'), clock);
    const hints: Change[] = [];
    watch.add((change) => hints.push(change));
    // A lost permission: etcd cancels every watch as soon as it is created.
    const cancelLatest = () => created.at(-1)!.emit('error', new Error('Watcher canceled: permission denied'));
    cancelLatest();
    for (let t = 0; t < 20_000; t += 10) {
      const before = created.length;
      await clock.advance(10);
      if (created.length > before) cancelLatest();
    }
    // A fixed 500 ms gave 40 watches (and 40 `any` hints) in 20 s; 500 ms doubling up to 10 s: at most 6.
    expect(created.length).toBeGreaterThanOrEqual(4);
    expect(created.length).toBeLessThanOrEqual(7);
    expect(hints.length).toBe(created.length);
    // The permission is back: the next watch holds, and a later cancellation is re-created within 500 ms.
    await clock.advance(10_000);
    created.at(-1)!.emit('connected', {});
    const holding = created.length;
    cancelLatest();
    await clock.advance(500);
    expect(created.length).toBe(holding + 1);
    await watch.close(100);
  });
});
