/**
 * The scheduler on a simulated fleet (memory store, one FakeClock): exactly once per tick, spreading,
 * fail-over, clean hand-over, misfire and overlap policies, fenced checkpoints, clocks that jump or
 * disagree, run records and status. Every scenario is deterministic: time moves only when the test says.
 */
import { hostname } from 'node:os';
import type { UnitName } from '../../src/scheduler/names.js';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { NotOwnerError } from '../../src/core/errors.js';
import { checkpointKey, runPrefix } from '../../src/scheduler/keys.js';
import { assignTasks } from '../../src/scheduler/placement.js';
import type { TaskContext, TaskHandler } from '../../src/scheduler/task.js';
import { SkewedClock } from '../../src/testing/fake-clock.js';
import { Sim, type SimNode } from '../helpers/sim.js';

let sim: Sim;
const cleanups: (() => void)[] = [];
const onCleanup = (fn: () => void) => cleanups.push(fn);
afterEach(async () => {
  for (const fn of cleanups.splice(0)) fn();
  await sim?.closeAll();
  // Invariant 5, after every scenario: once every node closed, nothing of any node is left scheduled.
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

/** The node that owns `task` now, according to the store. */
async function ownerOf(task: string): Promise<SimNode> {
  const id = (await sim.owners()).get(task);
  const node = sim.nodes.find((n) => n.id === id && n.cluster.state === 'running');
  if (!node) throw new Error(`no running owner for ${task} (store says ${String(id)})`);
  return node;
}

/** Advances until the wall clock is `offsetMs` past a whole multiple of `periodMs`. */
async function alignTo(periodMs: number, offsetMs: number): Promise<void> {
  const delta = (((offsetMs - (sim.clock.now() % periodMs)) % periodMs) + periodMs) % periodMs;
  if (delta > 0) await sim.advance(delta, 10);
}

const startsOf = (unit: string) => sim.starts.filter((s) => s.unit === unit);

describe('exactly once per tick', () => {
  it('runs every tick of a task exactly once across three nodes', async () => {
    sim = new Sim();
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(20_000);
    const ticks = startsOf('sync').map((s) => s.tick);
    expect(ticks.length).toBeGreaterThanOrEqual(19);
    expect(sim.duplicateTicks()).toBe(0);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(1000);
    // Ticks are aligned to the second, and each run started on time.
    for (const s of startsOf('sync')) expect(s.tick % 1000).toBe(0);
    const records = await sim.runRecords('sync');
    expect(records.map((r) => r.value.status)).toEqual(records.map(() => 'succeeded'));
    expect(records.map((r) => r.value.lateMs)).toEqual(records.map(() => 0));
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });
});

describe('spreading tasks', () => {
  it('spreads 30 tasks over 3 nodes 10/10/10 once rebalanceAfter passed, with graceful moves only', async () => {
    sim = new Sim();
    const tasks = Array.from({ length: 30 }, (_, i) => [`t${String(i).padStart(2, '0')}`, { every: '1s' }] as [string, { every: string }]);
    const a = await sim.node('a', tasks);
    await sim.advance(3000);
    expect((await sim.ownedCounts()).get('a')).toBe(30); // alone, it takes everything
    await sim.node('b', tasks);
    await sim.node('c', tasks);
    // Nothing moves before the newcomers have been alive for rebalanceAfter (= TTL, 3s).
    await sim.advance(2500);
    expect((await sim.ownedCounts()).get('a')).toBe(30);
    await sim.advance(5000);
    const counts = await sim.ownedCounts();
    expect(Object.fromEntries(counts)).toEqual({ a: 10, b: 10, c: 10 });

    // Moves were hand-overs between runs: released for "rebalance", never lost.
    const released = a.of('owner:released');
    expect(released).toHaveLength(20);
    expect(released.every((r) => r.reason === 'rebalance')).toBe(true);
    for (const n of sim.nodes) expect(n.of('owner:lost')).toEqual([]);
    for (const n of sim.nodes) expect(n.of('error')).toEqual([]);
    // No tick ran twice, none was skipped.
    expect(sim.duplicateTicks()).toBe(0);
    for (const [task] of tasks) {
      expect(await sim.lostTicks(task, 1000)).toEqual([]);
      expect((await sim.runRecords(task)).filter((r) => r.value.status === 'missed')).toEqual([]);
    }
    // And it stays put: no flapping.
    const before = await sim.owners();
    await sim.advance(5000);
    expect(await sim.owners()).toEqual(before);
  });

  it('hands tasks over between runs when handlers take time: no run is aborted by rebalancing', async () => {
    sim = new Sim();
    const tasks = Array.from({ length: 12 }, (_, i) => [`t${i}`, { every: '1s' }, () => sleep(sim.clock, 600)] as [string, { every: string }, () => Promise<void>]);
    const a = await sim.node('a', tasks);
    await sim.advance(2000);
    await sim.node('b', tasks);
    await sim.advance(8000);
    expect(Object.fromEntries(await sim.ownedCounts())).toEqual({ a: 6, b: 6 });
    expect(a.of('owner:released').map((r) => r.reason)).toEqual(Array(6).fill('rebalance'));
    for (const n of sim.nodes) expect(n.of('run:finished').filter((f) => f.outcome !== 'succeeded')).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
    for (const [task] of tasks) expect(await sim.lostTicks(task, 1000)).toEqual([]);
  });

  it('moves only the tasks a newcomer should take, not everything', async () => {
    sim = new Sim();
    const tasks = Array.from({ length: 30 }, (_, i) => [`t${i}`, { every: '1s' }] as [string, { every: string }]);
    await sim.node('a', tasks);
    await sim.node('b', tasks);
    await sim.advance(8000);
    const before = await sim.owners();
    await sim.node('c', tasks);
    await sim.advance(8000);
    const after = await sim.owners();
    const moved = [...before.keys()].filter((t) => before.get(t) !== after.get(t));
    // About T/N = 10 tasks move (placement may shuffle one more between the old nodes), almost all to c.
    expect(moved.length).toBeGreaterThanOrEqual(10);
    expect(moved.length).toBeLessThanOrEqual(12);
    expect(moved.filter((t) => after.get(t) === 'c').length).toBe(10);
  });

  it('competes only for declared tasks: a node never owns a task it does not declare', async () => {
    sim = new Sim();
    await sim.node('a', [['common', { every: '1s' }], ['only-a', { every: '1s' }]]);
    await sim.node('b', [['common', { every: '1s' }], ['only-b', { every: '1s' }]]);
    await sim.advance(8000);
    const owners = await sim.owners();
    expect(owners.get('only-a')).toBe('a');
    expect(owners.get('only-b')).toBe('b');
    expect(startsOf('only-a').every((s) => s.node === 'a')).toBe(true);
    expect(startsOf('only-b').every((s) => s.node === 'b')).toBe(true);
  });
});

describe('fail-over', () => {
  it('takes over after about the TTL when the owner loses the store; the old owner stops first', async () => {
    sim = new Sim();
    const aborts: { node: string; at: number }[] = [];
    const handler = (node: string): TaskHandler<never> => async (ctx) => {
      ctx.signal.addEventListener('abort', () => aborts.push({ node, at: sim.clock.monotonic() }), { once: true });
      await sleep(sim.clock, 3000, ctx.signal); // longer than the interval and the TTL: a run is in progress
    };
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }, handler(id)]]);
    await sim.advance(6000);
    const old = await ownerOf('sync');
    const runsSoFar = old.of('run:started').length;
    await sim.until(() => old.of('run:started').length > runsSoFar, 5000);
    await sim.advance(100); // 100ms into a 3s run: the run outlives the local deadline

    const [record] = (await sim.observer.listSessions()).filter((s) => s.info.id === old.id);
    const storeExpiry = sim.clock.monotonic() + record!.expiresInMs;
    const severedAt = sim.clock.monotonic();
    sim.backend.sever(old.store);

    const others = sim.nodes.filter((n) => n !== old);
    const acquiredBy = () => others.flatMap((n) => n.events.filter((e) => e.event === 'owner:acquired' && e.at >= severedAt).map((e) => ({ node: n, at: e.at })));
    await sim.until(() => acquiredBy().length > 0, 10_000);
    const takeover = acquiredBy()[0]!;
    // Host loss / partition: detected by the TTL, taken over within TTL + 1s (DESIGN.md failover ladder).
    expect(takeover.at - severedAt).toBeLessThanOrEqual(3000 + 1000);
    expect(takeover.at).toBeGreaterThanOrEqual(storeExpiry); // never before the store let the key go

    await sim.advance(3000);
    const oldAbort = aborts.find((x) => x.node === old.id && x.at >= severedAt);
    expect(oldAbort).toBeDefined();
    // Invariant 4: the old owner's run was aborted before the store expired it, hence before the new owner ran.
    expect(oldAbort!.at).toBeLessThan(storeExpiry);
    const firstNewRun = sim.starts.find((s) => s.node === takeover.node.id && s.at >= severedAt)!;
    expect(firstNewRun).toBeDefined();
    expect(oldAbort!.at).toBeLessThan(firstNewRun.at);
    expect(old.of('owner:lost').length).toBeGreaterThanOrEqual(1);

    // Only one node acquired it, no tick ran twice, and every tick in between is accounted for.
    expect(new Set(acquiredBy().map((x) => x.node.id)).size).toBe(1);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    const records = (await sim.runRecords('sync')).map((r) => r.value);
    // The run the old owner could not finish is marked aborted (interrupted), not left "running".
    expect(records.filter((r) => r.status === 'running' && r.tick < firstNewRun.tick)).toEqual([]);
    const aborted = records.find((r) => r.node === old.id && r.status === 'aborted');
    expect(aborted?.error).toMatch(/interrupted/);
    const missed = records.filter((r) => r.status === 'missed');
    // The ticks due between the cut and the store's expiry fell while the old owner still held the task:
    // the successor, which saw it hold the task until then, says so (not `no-owner`).
    const wallOf = (monotonic: number) => monotonic + sim.clock.now() - sim.clock.monotonic();
    const stalled = missed.filter((r) => r.missed?.reason === 'owner-stalled' && r.tick > wallOf(severedAt));
    // Before the cut, ticks were missed only during 3 s runs, some across a rebalancing hand-over: the
    // successor reads when the previous owner's run ended and records those as overlap, not as a stall.
    const beforeCut = missed.filter((r) => r.tick < wallOf(severedAt));
    expect(beforeCut.length).toBeGreaterThanOrEqual(1);
    expect(beforeCut.every((r) => r.missed?.reason === 'overlap')).toBe(true);
    expect(stalled).toHaveLength(1);
    expect(stalled[0]!.tick).toBeLessThanOrEqual(wallOf(storeExpiry));
    expect(missed.every((r) => r.missed?.reason === 'owner-stalled' || r.missed?.reason === 'overlap')).toBe(true);

    // The old node comes back: it rejoins with a new session and runs nothing twice.
    sim.backend.heal(old.store);
    await sim.advance(8000);
    expect(old.of('session:opened').length).toBe(2);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    const holders = await sim.observer.listHolders('task/');
    expect(holders).toHaveLength(1);
  });

  it('hands over at once on close(): another node acquires within a few hundred ms and no tick is lost', async () => {
    sim = new Sim();
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(6000);
    const old = await ownerOf('sync');
    await alignTo(1000, 400);
    const closedAt = sim.clock.monotonic();
    await old.cluster.close(); // resolves without time passing
    expect(sim.clock.monotonic()).toBe(closedAt);
    expect(old.cluster.state).toBe('closed');
    expect(old.of('owner:released').map((r) => r.reason)).toContain('shutdown');

    const others = sim.nodes.filter((n) => n !== old);
    const took = await sim.until(() => others.some((n) => n.events.some((e) => e.event === 'owner:acquired' && e.at >= closedAt)), 3000, 5);
    expect(took).toBeLessThanOrEqual(400); // far below the 3s TTL: no waiting for expiry
    await sim.advance(5000);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    expect((await sim.runRecords('sync')).filter((r) => r.value.status === 'missed')).toEqual([]);
    // The tick right after the hand-over ran on time.
    const next = startsOf('sync').find((s) => s.at > closedAt)!;
    expect(next.tick).toBe(sim.clock.now() - (sim.clock.now() % 1000) - 4000);
    expect(next.at - closedAt).toBe(600);
  });

  it('does not wait for a stuck preferred node: another node takes a free task after claimDelay', async () => {
    sim = new Sim();
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(6000);
    const old = await ownerOf('sync');
    const standbys = sim.nodes.filter((n) => n !== old);
    // The standby placement prefers for the task cannot reach the store (its session stays live there
    // until its TTL runs out), so it cannot take the task.
    const preferred = assignTasks(new Map([['sync', standbys.map((n) => n.id)]])).get('sync');
    const stuck = standbys.find((n) => n.id === preferred);
    const healthy = standbys.find((n) => n.id !== preferred);
    sim.backend.sever(stuck!.store);
    await alignTo(1000, 300);
    const closedAt = sim.clock.monotonic();
    await old.cluster.close();
    const took = await sim.until(() => healthy!.events.some((e) => e.event === 'owner:acquired' && e.at >= closedAt), 3000, 10);
    // It gave the preferred node claimDelay (300ms), then took the task: within one more scan (750ms),
    // well below the TTL.
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThanOrEqual(300 + 750);
    await sim.advance(3000);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });

  it('close() aborts a running handler, records the run as aborted and leaves nothing behind', async () => {
    sim = new Sim();
    let aborted = 0;
    const node = await sim.node('a', [
      [
        'slow',
        { every: '1s' },
        async (ctx) => {
          try {
            await sleep(sim.clock, 10_000, ctx.signal);
          } finally {
            if (ctx.signal.aborted) aborted += 1;
          }
        },
      ],
    ]);
    await sim.advance(1500);
    expect(startsOf('slow')).toHaveLength(1);
    await node.cluster.close();
    expect(aborted).toBe(1);
    const records = (await sim.runRecords('slow')).map((r) => r.value);
    expect(records.map((r) => r.status)).toEqual(['aborted']);
    expect(await sim.observer.listSessions()).toEqual([]);
    expect(await sim.observer.listHolders('')).toEqual([]);
    const finished = node.of('run:finished');
    expect(finished.map((f) => f.outcome)).toEqual(['aborted']);
    expect(sim.clock.pendingTimers).toBe(0);
    const calls = node.calls.length;
    await sim.advance(5000);
    expect(node.calls.length).toBe(calls); // nothing of this node runs after close()
  });
});

describe('misfire and overlap', () => {
  it('records ticks missed while every node was down, then runs the newest due tick at once', async () => {
    sim = new Sim();
    const first = await sim.node('a', [['sync', { every: '1s' }]]);
    await sim.advance(5000);
    const lastTick = startsOf('sync').at(-1)!.tick;
    await alignTo(1000, 500);
    await first.cluster.close();
    await sim.advance(10_000);
    const returnedAt = sim.clock.now();
    const again = await sim.node('a2', [['sync', { every: '1s' }]]);
    await sim.advance(100);

    const records = (await sim.runRecords('sync')).map((r) => r.value);
    const missed = records.filter((r) => r.status === 'missed');
    expect(missed).toHaveLength(1);
    const newest = Math.floor(returnedAt / 1000) * 1000;
    expect(missed[0]!.missed).toEqual({ from: lastTick + 1000, count: (newest - lastTick) / 1000 - 1, reason: 'no-owner' });
    expect(missed[0]!.missed!.count).toBeGreaterThanOrEqual(9);
    expect(missed[0]!.tick).toBe(newest - 1000);
    // "Run once now": the newest due tick runs immediately, late.
    const run = startsOf('sync').find((s) => s.node === 'a2')!;
    expect(run.tick).toBe(newest);
    expect(again.of('run:started')[0]!.lateMs).toBe(returnedAt - newest);
    expect(again.of('tick:missed')).toEqual([{ task: 'sync', unit: 'sync', from: lastTick + 1000, to: newest - 1000, count: missed[0]!.missed!.count, reason: 'no-owner' }]);
    await sim.advance(3000);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('records ticks due while another node held the task without running them as owner-stalled, not no-owner', async () => {
    sim = new Sim();
    for (const id of ['a', 'b']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(8000); // past rebalanceAfter: placement is settled
    const old = await ownerOf('sync');
    const standby = sim.nodes.find((n) => n !== old)!;
    await alignTo(1000, 100);
    const lastTick = startsOf('sync').at(-1)!.tick;
    const [session] = (await sim.observer.listSessions()).filter((s) => s.info.id === old.id);
    const storeExpiry = sim.clock.now() + session!.expiresInMs;
    sim.backend.sever(old.store); // it keeps the task in the store until its session expires, running nothing
    await sim.until(() => standby.of('owner:acquired').length > 0, 10_000);
    await sim.advance(100);

    const missed = (await sim.runRecords('sync')).map((r) => r.value).filter((r) => r.status === 'missed');
    expect(missed).toHaveLength(1);
    expect(missed[0]!.missed).toMatchObject({ from: lastTick + 1000, reason: 'owner-stalled' });
    expect(missed[0]!.tick).toBeLessThanOrEqual(storeExpiry);
    expect(missed[0]!.missed!.count).toBeGreaterThanOrEqual(2);
    expect(standby.of('tick:missed').map((e) => e.reason)).toEqual(['owner-stalled']);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('counts only the ticks up to its last look at the holder as owner-stalled when the successor could not look meanwhile', async () => {
    sim = new Sim();
    for (const id of ['a', 'b']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(8000);
    const old = await ownerOf('sync');
    const standby = sim.nodes.find((n) => n !== old)!;
    await alignTo(1000, 100);
    const lastTick = startsOf('sync').at(-1)!.tick;
    sim.backend.sever(old.store);
    await sim.advance(1500); // the standby still sees the holder: tick lastTick + 1000 falls due under it
    const lastLook = sim.clock.now();
    sim.backend.sever(standby.store); // the standby cannot look while the holder's session expires
    await sim.advance(6000);
    sim.backend.heal(standby.store);
    await sim.until(() => standby.of('owner:acquired').length > 0, 10_000);
    await sim.advance(100);

    const missed = (await sim.runRecords('sync')).map((r) => r.value).filter((r) => r.status === 'missed');
    expect(missed.map((r) => r.missed?.reason)).toEqual(['owner-stalled', 'no-owner']);
    const [held, free] = missed as [(typeof missed)[number], (typeof missed)[number]];
    expect(held.missed!.from).toBe(lastTick + 1000);
    expect(held.tick).toBe(Math.floor(lastLook / 1000) * 1000);
    expect(free.missed!.from).toBe(held.tick + 1000);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('never overlaps runs of a handler longer than the interval; skipped ticks are recorded as overlap', async () => {
    sim = new Sim();
    let active = 0;
    let maxActive = 0;
    await sim.node('a', [['long', { every: '1s' }, async () => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      await sleep(sim.clock, 2500);
      active -= 1;
    }]]);
    await sim.node('b', [['long', { every: '1s' }, async () => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      await sleep(sim.clock, 2500);
      active -= 1;
    }]]);
    await sim.advance(20_000);
    expect(maxActive).toBe(1);
    const records = (await sim.runRecords('long')).map((r) => r.value);
    const runs = records.filter((r) => r.status !== 'missed');
    const missed = records.filter((r) => r.status === 'missed');
    expect(runs.length).toBeGreaterThanOrEqual(6);
    expect(missed.length).toBeGreaterThanOrEqual(5);
    expect(missed.every((r) => r.missed?.reason === 'overlap')).toBe(true);
    // Runs never overlap in the records either: each starts after the previous one ended.
    for (let i = 1; i < runs.length; i++) {
      if (runs[i - 1]!.status === 'running') continue;
      expect(runs[i]!.startedAt!).toBeGreaterThanOrEqual(runs[i - 1]!.endedAt!);
    }
    expect(await sim.lostTicks('long', 1000)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });
});

describe('checkpoints', () => {
  it('round-trips through commit/get and survives a hand-over', async () => {
    sim = new Sim();
    const seen: (number | undefined)[] = [];
    const counter = async (ctx: TaskContext<number>) => {
      const n = await ctx.checkpoint.get();
      seen.push(n);
      await ctx.checkpoint.commit((n ?? 0) + 1);
    };
    const a = await sim.node('a', [['count', { every: '1s' }, counter as TaskHandler<never>]]);
    await sim.advance(5000);
    expect(seen).toEqual([undefined, 1, 2, 3, 4]);
    const stored = await sim.observer.get<{ value: number; tick: number; token: string }>(checkpointKey('count' as UnitName));
    expect(stored?.value.value).toBe(5);
    expect(stored?.value.tick).toBe(startsOf('count').at(-1)!.tick);

    await sim.node('b', [['count', { every: '1s' }, counter as TaskHandler<never>]]);
    await alignTo(1000, 500);
    await a.cluster.close();
    await sim.advance(3000);
    expect(startsOf('count').at(-1)!.node).toBe('b');
    expect(seen).toEqual([undefined, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('refuses a zombie ex-owner’s commit with NotOwnerError and keeps the new owner’s value', async () => {
    sim = new Sim();
    let releaseZombie!: () => void;
    const gate = new Promise<void>((resolve) => (releaseZombie = resolve));
    let zombieError: unknown;
    let zombieSignalAbortedAt: number | undefined;
    let zombieRuns = 0;
    const zombie = async (ctx: TaskContext<string>) => {
      await ctx.checkpoint.commit(`a@${ctx.tick.getTime()}`);
      if (zombieRuns++ > 0) return;
      ctx.signal.addEventListener('abort', () => (zombieSignalAbortedAt = sim.clock.monotonic()), { once: true });
      await gate; // a handler that ignores its signal (a long GC, a blocking call …)
      try {
        await ctx.checkpoint.commit('zombie');
      } catch (error) {
        zombieError = error;
      }
    };
    const fresh = async (ctx: TaskContext<string>) => {
      await ctx.checkpoint.commit(`b@${ctx.tick.getTime()}`);
    };
    onCleanup(() => releaseZombie());
    const a = await sim.node('a', [['cp', { every: '1s' }, zombie as TaskHandler<never>]], { cluster: { rebalanceAfter: '1h' } });
    await sim.advance(1500);
    // No rebalancing in this scenario: b keeps the task once it took it over.
    const b = await sim.node('b', [['cp', { every: '1s' }, fresh as TaskHandler<never>]], { cluster: { rebalanceAfter: '1h' } });
    expect((await sim.owners()).get('cp')).toBe('a');
    expect((await sim.observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))?.value.value).toMatch(/^a@/);

    sim.backend.sever(a.store);
    const severedAt = sim.clock.monotonic();
    await sim.advance(6000); // past a's TTL: b owns the task now and commits
    expect((await sim.owners()).get('cp')).toBe('b');
    const bRuns = startsOf('cp').filter((s) => s.node === 'b');
    expect(bRuns.length).toBeGreaterThanOrEqual(2);
    expect(zombieSignalAbortedAt).toBeDefined();
    expect(zombieSignalAbortedAt!).toBeGreaterThan(severedAt);
    expect(zombieSignalAbortedAt!).toBeLessThan(bRuns[0]!.at);

    sim.backend.heal(a.store);
    await sim.advance(2000); // a is reachable again, with a new session
    const before = (await sim.observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))!;
    releaseZombie();
    await sim.advance(100);
    expect(zombieError).toBeInstanceOf(NotOwnerError);
    expect((zombieError as NotOwnerError).code).toBe('NOT_OWNER');
    const after = (await sim.observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))!;
    expect(after.value.value).toMatch(/^b@/);
    expect(after.version).toBeGreaterThanOrEqual(before.version);
    expect(after.value.value).not.toBe('zombie');
    await sim.advance(2000);
    expect((await sim.observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))?.value.value).toMatch(/^b@/);
    expect(b.of('owner:lost')).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });
});

describe('stalls', () => {
  it('a node waking from a stall longer than its TTL sends no write under its old token', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }]]);
    await sim.advance(2500);
    const token = a.of('owner:acquired')[0]!.token;
    const stallStart = sim.clock.monotonic();
    await sim.clock.stall(5000);
    await sim.advance(3000);
    const stale = a.calls.filter((c) => {
      if (c.at < stallStart) return false;
      const condition = c.args[2] as { guard?: { token: bigint } } | undefined;
      return c.method === 'put' && condition?.guard?.token === token;
    });
    expect(stale).toEqual([]);
    expect(a.of('session:lost').length).toBeGreaterThanOrEqual(1);
    // It took the task again under a new session and a greater token, and carried on.
    const tokens = a.of('owner:acquired').map((e) => e.token);
    expect(tokens.length).toBe(2);
    expect(tokens[1]!).toBeGreaterThan(token);
    expect(startsOf('sync').at(-1)!.at).toBeGreaterThan(stallStart + 5000);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });

  it('records ticks skipped by a shorter stall (the lease survived it) as missed with reason "stalled"', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }]]);
    await sim.advance(3000);
    await alignTo(1000, 100);
    await sim.clock.stall(2000); // wakes 1.2s after the tick it slept for, before the lease deadline
    await sim.advance(500);
    expect(a.of('session:lost')).toEqual([]);
    expect(a.of('owner:acquired')).toHaveLength(1);
    const missed = a.of('tick:missed');
    expect(missed).toHaveLength(1);
    expect(missed[0]).toMatchObject({ count: 1, reason: 'stalled' });
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });
});

describe('clocks', () => {
  it('never runs a tick twice when the wall clock jumps backwards', async () => {
    sim = new Sim();
    for (const id of ['a', 'b']) await sim.node(id, [['sync', { every: '1s' }]]);
    await sim.advance(5500);
    const beforeJump = startsOf('sync').length;
    const lastBefore = startsOf('sync').at(-1)!.tick;
    // The shared clock is the memory store's too: the store's clock steps back. Nodes count on from
    // their last sample (store-clock.ts) until the next one shows the step, then wait for the store's
    // time to pass their cursor.
    sim.clock.jumpWall(-5000);
    await sim.advance(3000);
    // The ticks of the last 5 s are not run again: the cursor is the last recorded tick.
    expect(startsOf('sync').slice(beforeJump).filter((s) => s.tick <= lastBefore)).toEqual([]);
    // A hand-over while the clock is behind: the new owner reads the cursor from the store.
    await (await ownerOf('sync')).cluster.close();
    await sim.advance(10_000);
    expect(sim.duplicateTicks()).toBe(0);
    const ticks = startsOf('sync').map((s) => s.tick);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).toBeGreaterThan(ticks[i - 1]!);
    expect(ticks.length).toBeGreaterThan(beforeJump + 3); // and it carries on once the wall clock caught up
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });

  it('never runs a tick twice when the nodes’ clocks disagree, across hand-overs', async () => {
    sim = new Sim();
    const offsets: Record<string, number> = { a: 0, b: 800, c: -1200, d: 2500, e: -400 };
    for (const id of ['a', 'b', 'c']) await sim.node(id, [['sync', { every: '1s' }]], { clock: new SkewedClock(sim.clock, offsets[id]!) });
    await sim.advance(5000);
    for (const id of ['d', 'e']) {
      await (await ownerOf('sync')).cluster.close();
      await sim.advance(2300);
      await sim.node(id, [['sync', { every: '1s' }]], { clock: new SkewedClock(sim.clock, offsets[id]!) });
      await sim.advance(2300);
    }
    await (await ownerOf('sync')).cluster.close();
    await sim.advance(5000);
    // A failure too, not only clean hand-overs.
    sim.backend.sever((await ownerOf('sync')).store);
    await sim.advance(8000);
    const nodesThatRan = new Set(startsOf('sync').map((s) => s.node));
    expect(nodesThatRan.size).toBeGreaterThanOrEqual(4);
    expect(sim.duplicateTicks()).toBe(0);
    const ticks = startsOf('sync').map((s) => s.tick);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).toBeGreaterThan(ticks[i - 1]!);
    expect(await sim.lostTicks('sync', 1000)).toEqual([]);
  });
});

describe('cron', () => {
  it('runs a cron schedule with seconds', async () => {
    sim = new Sim();
    for (const id of ['a', 'b']) await sim.node(id, [['even', { cron: '*/2 * * * * *' }]]);
    await sim.advance(20_000);
    const ticks = startsOf('even').map((s) => s.tick);
    expect(ticks.length).toBe(10);
    for (const t of ticks) expect(t % 2000).toBe(0);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(2000);
    expect(sim.duplicateTicks()).toBe(0);
  });
});

describe('run records and status', () => {
  it('stores one record per run with node, host, pid, tick, times, token and status', async () => {
    sim = new Sim();
    await sim.node('a', [['sync', { every: '1s' }, () => sleep(sim.clock, 120)]]);
    await sim.advance(3500);
    const records = await sim.runRecords('sync');
    expect(records).toHaveLength(3);
    for (const { key, value } of records) {
      expect(key).toBe(`${runPrefix('sync' as UnitName)}${String(value.tick).padStart(15, '0')}`);
      expect(value).toMatchObject({ task: 'sync', node: 'a', host: hostname(), pid: process.pid, status: 'succeeded', durationMs: 120, lateMs: 0 });
      expect(value.tick % 1000).toBe(0);
      expect(value.startedAt).toBe(value.tick);
      expect(value.endedAt).toBe(value.startedAt! + 120);
      expect(typeof value.token).toBe('string');
      expect(value.error).toBeUndefined();
    }
  });

  it('records a failing handler as failed with its error, and keeps running the next ticks', async () => {
    sim = new Sim();
    let calls = 0;
    const node = await sim.node('a', [['flaky', { every: '1s' }, () => {
      calls += 1;
      if (calls === 2) throw new Error('upstream said 503');
    }]]);
    await sim.advance(4500);
    const records = (await sim.runRecords('flaky')).map((r) => r.value);
    expect(records.map((r) => r.status)).toEqual(['succeeded', 'failed', 'succeeded', 'succeeded']);
    expect(records[1]!.error).toMatch(/upstream said 503/);
    const finished = node.of('run:finished');
    expect(finished[1]).toMatchObject({ task: 'flaky', outcome: 'failed' });
    expect(finished[1]!.error?.message).toBe('upstream said 503');
    expect(node.of('owner:lost')).toEqual([]);
    expect(node.of('owner:acquired')).toHaveLength(1);
  });

  it('keeps at most `history` run records when history is small (pruned after every run)', async () => {
    sim = new Sim();
    await sim.node('a', [['sync', { every: '1s', history: 3 }]]);
    for (let i = 0; i < 12; i++) {
      await sim.advance(1000);
      expect((await sim.runRecords('sync')).length).toBeLessThanOrEqual(3);
    }
    const ticks = (await sim.runRecords('sync')).map((r) => r.value.tick);
    expect(ticks).toEqual(startsOf('sync').slice(-3).map((s) => s.tick)); // the newest ones
  });

  it('prunes a larger history in batches: never more than history + ⌊history/4⌋ − 1 records', async () => {
    sim = new Sim();
    await sim.node('a', [['sync', { every: '1s', history: 8 }]]);
    let max = 0;
    for (let i = 0; i < 20; i++) {
      await sim.advance(1000);
      max = Math.max(max, (await sim.runRecords('sync')).length);
    }
    expect(max).toBeLessThanOrEqual(8 + 2 - 1);
    const kept = (await sim.runRecords('sync')).map((r) => r.value.tick);
    expect(kept.length).toBeGreaterThanOrEqual(8);
    expect(kept).toEqual(startsOf('sync').slice(-kept.length).map((s) => s.tick));
  });

  it('shows owner host/pid, last run and next tick in cluster.status()', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['sync', { every: '1s' }], ['report', { cron: '0 */5 * * * *' }]]);
    await sim.node('b', [['sync', { every: '1s' }], ['report', { cron: '0 */5 * * * *' }]]);
    await sim.advance(4500);
    const status = await a.cluster.status();
    expect(status.cluster).toBe('sim');
    expect(status.nodes.map((n) => n.id).sort()).toEqual(['a', 'b']);
    const sync = status.tasks.find((t) => t.unit === 'sync')!;
    const owner = await ownerOf('sync');
    expect(sync.owner).toMatchObject({ node: owner.id, host: hostname(), pid: process.pid });
    expect(sync.schedules).toEqual(['every 1s']);
    expect(sync.declaredBy).toBe(2);
    expect(sync.lastRun).toMatchObject({ status: 'succeeded', node: owner.id, tick: startsOf('sync').at(-1)!.tick });
    expect(sync.nextTick).toBe(Math.floor(status.at / 1000) * 1000 + 1000);
    const report = status.tasks.find((t) => t.unit === 'report')!;
    expect(report.lastRun).toBeNull();
    expect(report.nextTick! % 300_000).toBe(0);
    expect(report.nextTick!).toBeGreaterThan(status.at);
    const ownerNode = status.nodes.find((n) => n.id === owner.id)!;
    expect(ownerNode.owns).toContain('sync');
    expect(ownerNode.expiresInMs).toBeGreaterThan(0);
  });
});
