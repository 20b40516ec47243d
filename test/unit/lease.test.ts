/**
 * Leases: ownership of one key with a fencing token (DESIGN.md invariants 1 and 2). A write guarded by a
 * lease is checked locally first (a node past its deadline never sends it) and then by the store (a newer
 * token, or an owner whose session the store dropped, is refused).
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionKeeper } from '../../src/cluster/session-keeper.js';
import { resolveSessionTiming } from '../../src/cluster/session-timing.js';
import { tryAcquireLease, type Lease } from '../../src/cluster/lease.js';
import { NotOwnerError, SessionExpiredError } from '../../src/core/errors.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { recordingStore, testNodeInfo } from '../helpers/sim.js';

function fleet() {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  const timing = resolveSessionTiming({ ttl: 3000, renewEvery: 1000, safetyMargin: 600 });
  const make = (id: string) => {
    const handle = backend.connect('lease');
    const recorded = recordingStore(handle, clock);
    const keeper = new SessionKeeper({ store: recorded.store, info: testNodeInfo(id), timing, clock, emit: () => undefined });
    return { id, handle, store: recorded.store, recorded, keeper };
  };
  return { clock, backend, make, observer: backend.connect('lease') };
}

async function acquire(node: { store: Parameters<typeof tryAcquireLease>[0]; keeper: SessionKeeper }, key: string): Promise<Lease> {
  const session = node.keeper.current;
  if (!session) throw new Error('no live session');
  const outcome = await tryAcquireLease(node.store, session, key);
  if (!('lease' in outcome)) throw new Error(`held by ${outcome.holder.sessionId}`);
  return outcome.lease;
}

const keepers: SessionKeeper[] = [];
afterEach(async () => {
  for (const k of keepers.splice(0)) await k.close();
});

describe('leases and their session', () => {
  it("aborts with the session's reason when the session is lost, and leaves nothing on the session once ended", async () => {
    const f = fleet();
    const a = f.make('a');
    keepers.push(a.keeper);
    await a.keeper.start();
    const session = a.keeper.current!;
    const baseline = getEventListeners(session.signal, 'abort').length;
    for (let i = 0; i < 50; i++) await (await acquire(a, `k${i}`)).release(new Error('done'));
    // A long-lived session sees thousands of leases: each must take its listener away when it ends.
    expect(getEventListeners(session.signal, 'abort').length).toBe(baseline);

    const held = await acquire(a, 'held');
    f.backend.sever(a.handle);
    await f.clock.advance(3000);
    expect(session.signal.aborted).toBe(true);
    expect(held.signal.aborted).toBe(true);
    expect(held.signal.reason).toBe(session.signal.reason);
    f.backend.heal(a.handle);
  });
});

describe('leases and fencing', () => {
  it('gives a key to one session at a time, with increasing tokens across hand-overs', async () => {
    const f = fleet();
    const a = f.make('a');
    const b = f.make('b');
    keepers.push(a.keeper, b.keeper);
    await a.keeper.start();
    await b.keeper.start();

    const first = await acquire(a, 'k');
    const contender = await tryAcquireLease(b.store, b.keeper.current!, 'k');
    expect('holder' in contender && contender.holder.sessionId).toBe(a.keeper.current!.id);

    await first.release(new Error('done'));
    expect(first.signal.aborted).toBe(true);
    const second = await acquire(b, 'k');
    expect(second.token).toBeGreaterThan(first.token);
    await second.release(new Error('done'));
    const third = await acquire(a, 'k');
    expect(third.token).toBeGreaterThan(second.token);
  });

  it('refuses a zombie write store-side once the store gave the key to another session (NotOwnerError, signal aborted)', async () => {
    const f = fleet();
    const a = f.make('a');
    const b = f.make('b');
    keepers.push(a.keeper, b.keeper);
    await a.keeper.start();
    await b.keeper.start();
    const zombie = await acquire(a, 'task/x');
    expect((await zombie.put('checkpoint/x', 'from a')).ok).toBe(true);

    // The store drops a's session behind its back (a store failover, an operator): a still believes it is live.
    await f.observer.closeSession(a.keeper.current!.id);
    const owner = await acquire(b, 'task/x');
    expect((await owner.put('checkpoint/x', 'from b')).ok).toBe(true);
    expect(zombie.session.isLive()).toBe(true); // locally nothing is known yet

    await expect(zombie.put('checkpoint/x', 'zombie')).rejects.toBeInstanceOf(NotOwnerError);
    expect(zombie.signal.aborted).toBe(true);
    expect(zombie.isHeld()).toBe(false);
    expect((await f.observer.get('checkpoint/x'))?.value).toBe('from b');
    // The new owner is unaffected.
    expect((await owner.put('checkpoint/x', 'from b again')).ok).toBe(true);
  });

  it('never sends a guarded write once its session is past the local deadline', async () => {
    const f = fleet();
    const a = f.make('a');
    keepers.push(a.keeper);
    await a.keeper.start();
    const lease = await acquire(a, 'task/x');
    await f.clock.stall(5000);
    expect(lease.signal.aborted).toBe(true);
    const putsBefore = a.recorded.count('put');
    const error = await lease.put('checkpoint/x', 'late').then(
      () => undefined,
      (e: unknown) => e,
    );
    // One error for a refused write, whether refused locally or by the store; the cause says why.
    expect(error).toBeInstanceOf(NotOwnerError);
    expect((error as Error).cause).toBeInstanceOf(SessionExpiredError);
    expect(a.recorded.count('put')).toBe(putsBefore);
    expect(await f.observer.get('checkpoint/x')).toBeNull();
  });

  it('ends the lease (and its session) the moment a write is refused past the deadline, before any timer fires', async () => {
    const f = fleet();
    const a = f.make('a');
    keepers.push(a.keeper);
    await a.keeper.start();
    const lease = await acquire(a, 'task/x');
    f.clock.pause(2500); // past the local deadline (+2400); the keeper's timers have not run yet
    expect(lease.signal.aborted).toBe(false);
    const putsBefore = a.recorded.count('put');
    await expect(lease.put('checkpoint/x', 'late')).rejects.toBeInstanceOf(NotOwnerError);
    expect(lease.signal.aborted).toBe(true);
    expect(lease.session.signal.aborted).toBe(true); // every lease of the session ends with it
    expect(() => lease.assertHeld()).toThrow(NotOwnerError);
    expect(a.recorded.count('put')).toBe(putsBefore);
  });

  it('refuses to acquire with a session that is not provably alive', async () => {
    const f = fleet();
    const a = f.make('a');
    keepers.push(a.keeper);
    const session = await a.keeper.start();
    await f.clock.stall(5000);
    await expect(tryAcquireLease(a.store, session, 'task/x')).rejects.toBeInstanceOf(SessionExpiredError);
  });
});
