/**
 * Background loops back off while the store fails: a store that answers every call with an error at once
 * is not asked in a hot loop (a standby once logged 765 failed placement scans in 1.1 s, because a task
 * free for longer than `claimDelay` re-armed the scan at once after each failure).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ownerKey } from '../../src/scheduler/keys.js';
import type { UnitName } from '../../src/scheduler/names.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
});

describe('placement scan', () => {
  it('backs off after failed scans, though a task has been free longer than claimDelay', async () => {
    sim = new Sim();
    const options = { ttl: 20_000, cluster: { claimDelay: 2000, scanEvery: 1000 } };
    const nodes = [await sim.node('a', [['x', { every: '1h' }]], options), await sim.node('b', [['x', { every: '1h' }]], options)];
    await sim.until(async () => (await sim.owners()).get('x') !== undefined, 10_000);
    // The owner is x's preferred node: cut it off, and free x behind its back. It stays alive in the
    // store (TTL 20 s) and preferred, so the standby waits claimDelay before standing in…
    const ownerId = (await sim.owners()).get('x');
    const preferred = nodes.find((n) => n.id === ownerId)!;
    const standby = nodes.find((n) => n.id !== ownerId)!;
    sim.backend.sever(preferred.store);
    const holder = await sim.observer.holder(ownerKey('x' as UnitName));
    await sim.observer.release(holder!.key, holder!.token);
    await sim.advance(1200, 10); // the standby's next scan sees x free
    // … and then its store fails too, for longer than claimDelay.
    sim.backend.sever(standby.store);
    const scans = () => standby.calls.filter((c) => c.method === 'listHolders').length;
    const failures = () => standby.of('error').filter((e) => e.where === 'placement scan').length;
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
});
