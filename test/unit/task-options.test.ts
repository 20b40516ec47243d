/**
 * Task options of the singleton mode on a simulated fleet (memory store, one FakeClock): once-at, cron
 * through DST, jitter, misfire and overlap policies, timeout, retries, concurrency groups, dependencies,
 * manual triggers, pause/resume, and the declarations baton refuses. Deterministic: no real time passes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { BatonError, TimeoutError, type BatonErrorCode } from '../../src/core/errors.js';
import { jitterFor } from '../../src/scheduler/misfire.js';
import type { RunRecord, TaskContext, TaskHandler, TaskOptions } from '../../src/scheduler/task.js';
import { Sim, type SimNode } from '../helpers/sim.js';

let sim: Sim | undefined;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
  sim = undefined;
});

const S = (): Sim => sim as Sim;
const startsOf = (unit: string) => S().starts.filter((s) => s.unit === unit);
const records = async (task: string): Promise<RunRecord[]> => (await S().runRecords(task)).map((r) => r.value);
const iso = (ms: number) => new Date(ms).toISOString();

async function ownerOf(task: string): Promise<SimNode> {
  const id = (await S().owners()).get(task);
  const node = S().nodes.find((n) => n.id === id && n.cluster.state === 'running');
  if (!node) throw new Error(`no running owner for ${task}`);
  return node;
}

/** Advances until the wall clock is `offsetMs` past a whole multiple of `periodMs`. */
async function alignTo(periodMs: number, offsetMs: number): Promise<void> {
  const now = S().clock.now();
  const delta = (((offsetMs - (now % periodMs)) % periodMs) + periodMs) % periodMs;
  if (delta > 0) await S().advance(delta, 10);
}

describe('at: a single tick', () => {
  it('runs once at the instant, then never again; a trigger still runs it by hand', async () => {
    sim = new Sim();
    const at = Date.UTC(2026, 0, 1, 0, 0, 30);
    const a = await sim.node('a', [['once', { at: new Date(at) }]]);
    await sim.node('b', [['once', { at: '2026-01-01T00:00:30Z' }]]);
    await sim.advance(29_000);
    expect(startsOf('once')).toEqual([]);
    await sim.advance(2000);
    expect(startsOf('once').map((s) => s.tick)).toEqual([at]);
    await sim.advance(60_000);
    expect(startsOf('once')).toHaveLength(1);
    const status = (await a.cluster.status()).tasks.find((t) => t.unit === 'once')!;
    expect(status.schedules).toEqual(['at 2026-01-01T00:00:30.000Z']);
    expect(status.nextTick).toBeNull();
    await a.cluster.trigger('once');
    await sim.advance(100);
    expect(startsOf('once')).toHaveLength(2);
  });

  it('treats an instant that passed before any node ran it as a misfire: run-once runs it, skip records it', async () => {
    sim = new Sim(Date.UTC(2026, 0, 1, 12));
    await sim.node('a', [
      ['late', { at: '2026-01-01T11:00:00Z' }],
      ['dropped', { at: '2026-01-01T11:00:00+00:00', misfire: 'skip' }],
    ]);
    await sim.advance(1000);
    expect(startsOf('late').map((s) => iso(s.tick))).toEqual(['2026-01-01T11:00:00.000Z']);
    expect(startsOf('dropped')).toEqual([]);
    expect((await records('dropped')).map((r) => [r.status, r.missed?.reason])).toEqual([['missed', 'no-owner']]);
    // A restart does not run it again: the record is the cursor.
    await sim.closeAll();
    await sim.node('a2', [['late', { at: '2026-01-01T11:00:00Z' }]]);
    await sim.advance(2000);
    expect(startsOf('late')).toHaveLength(1);
  });
});

describe('cron through DST, on a fleet', () => {
  /**
   * Runs three cron tasks in `timezone` on two nodes (the owner of each is closed half-way) over 4 hours
   * from `fromUtc`; returns the ticks each ran, as ISO strings.
   */
  async function runWindow(timezone: string, fromUtc: number): Promise<Record<string, string[]>> {
    sim = new Sim(fromUtc);
    const tasks: [string, TaskOptions][] = [
      ['at-0130', { cron: '0 30 1 * * *', timezone }],
      ['at-0230', { cron: '0 30 2 * * *', timezone }],
      ['half-hourly', { cron: '0 */30 * * * *', timezone }],
    ];
    const opts = { ttl: 3_600_000, cluster: { scanEvery: '10m' } };
    await sim.node('a', tasks, opts);
    await sim.node('b', tasks, opts);
    await sim.advance(2 * 3_600_000, 60_000);
    await sim.nodes[0]!.cluster.close();
    await sim.advance(2 * 3_600_000 - 1, 60_000);
    expect(sim.duplicateTicks()).toBe(0);
    const result: Record<string, string[]> = {};
    for (const [task] of tasks) {
      // Every record a success, but for the next tick, claimed ahead of its time and not started yet.
      const pending = (r: RunRecord) => r.status === 'running' && (r.claimedAt ?? Infinity) < r.tick && r.tick > S().clock.now();
      expect((await records(task)).filter((r) => r.status !== 'succeeded' && !pending(r))).toEqual([]);
      result[task] = startsOf(task).map((s) => iso(s.tick));
    }
    // Sub-hourly patterns follow real elapsed time: 7 half-hours after the start within 4 hours, whether
    // the local hour is skipped or repeated.
    const half = startsOf('half-hourly').map((s) => s.tick);
    expect(half).toHaveLength(7);
    for (let i = 1; i < half.length; i++) expect(half[i]! - half[i - 1]!).toBe(1_800_000);
    return result;
  }

  it('Europe/Berlin, spring forward: 02:30 does not exist and runs once, at 03:00 CEST', async () => {
    const ran = await runWindow('Europe/Berlin', Date.UTC(2026, 2, 28, 23));
    expect(ran['at-0130']).toEqual(['2026-03-29T00:30:00.000Z']); // 01:30 CET
    expect(ran['at-0230']).toEqual(['2026-03-29T01:00:00.000Z']); // 02:30 skipped → 03:00 CEST
  });

  it('Europe/Berlin, fall back: 02:30 happens twice and runs once (the first time)', async () => {
    const ran = await runWindow('Europe/Berlin', Date.UTC(2026, 9, 24, 23));
    expect(ran['at-0130']).toEqual(['2026-10-24T23:30:00.000Z']); // 01:30 CEST
    expect(ran['at-0230']).toEqual(['2026-10-25T00:30:00.000Z']); // 02:30 CEST, not again at 02:30 CET
  });

  it('America/New_York, spring forward: 02:30 does not exist and runs once, at 03:00 EDT', async () => {
    const ran = await runWindow('America/New_York', Date.UTC(2026, 2, 8, 5));
    expect(ran['at-0130']).toEqual(['2026-03-08T06:30:00.000Z']); // 01:30 EST
    expect(ran['at-0230']).toEqual(['2026-03-08T07:00:00.000Z']); // 02:30 skipped → 03:00 EDT
  });

  it('America/New_York, fall back: 01:30 happens twice and runs once (the first time)', async () => {
    const ran = await runWindow('America/New_York', Date.UTC(2026, 10, 1, 4));
    expect(ran['at-0130']).toEqual(['2026-11-01T05:30:00.000Z']); // 01:30 EDT, not again at 01:30 EST
    expect(ran['at-0230']).toEqual(['2026-11-01T07:30:00.000Z']); // 02:30 EST
  });
});

describe('jitter', () => {
  it('delays each tick by the same deterministic amount on every node; lateness excludes it', async () => {
    sim = new Sim();
    const seen: { tick: number; jitterMs: number; lateMs: number; at: number }[] = [];
    const handler: TaskHandler<never> = (ctx) => {
      seen.push({ tick: ctx.tick.getTime(), jitterMs: ctx.jitterMs, lateMs: ctx.lateMs, at: S().clock.now() });
    };
    await sim.node('a', [['spread', { every: '10s', jitter: '5s' }, handler]]);
    await sim.node('b', [['spread', { every: '10s', jitter: '5s' }, handler]]);
    await sim.advance(40_000, 10);
    await (await ownerOf('spread')).cluster.close(); // the other node waits exactly as long
    await sim.advance(40_000, 10);
    expect(seen.length).toBeGreaterThanOrEqual(7);
    for (const s of seen) {
      expect(s.jitterMs).toBe(jitterFor('spread', s.tick, 5000));
      expect(s.jitterMs).toBeGreaterThanOrEqual(0);
      expect(s.jitterMs).toBeLessThan(5000);
      expect(s.at).toBe(s.tick + s.jitterMs);
      expect(s.lateMs).toBe(0);
    }
    expect(new Set(seen.map((s) => s.jitterMs)).size).toBeGreaterThan(3);
    const rec = (await records('spread')).filter((r) => r.status === 'succeeded');
    expect(rec.every((r) => r.jitterMs === jitterFor('spread', r.tick, 5000) && r.lateMs === 0)).toBe(true);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('spread', 10_000)).toEqual([]);
  });
});

describe('misfire after a long outage', () => {
  /** Runs a task on node a, closes it, leaves the cluster empty for `outageMs`, then starts node b. */
  async function outage(options: TaskOptions, outageMs: number): Promise<{ lastBefore: number; returnedAt: number }> {
    sim = new Sim();
    const a = await sim.node('a', [['job', options]]);
    await sim.advance(30_000, 100);
    const lastBefore = startsOf('job').at(-1)!.tick;
    await alignTo(10_000, 2000);
    await a.cluster.close();
    await sim.advance(outageMs - 2000 + 5000, 100); // b returns 5s after a tick: later than the 1s grace
    const returnedAt = sim.clock.now();
    await sim.node('b', [['job', options]]);
    await sim.advance(200, 10);
    return { lastBefore, returnedAt };
  }

  it('run-once (default): records the missed ticks and runs the newest at once', async () => {
    const { lastBefore, returnedAt } = await outage({ every: '10s' }, 120_000);
    const newest = Math.floor(returnedAt / 10_000) * 10_000;
    const after = startsOf('job').filter((s) => s.node === 'b');
    expect(after.map((s) => s.tick)).toEqual([newest]);
    const missed = (await records('job')).filter((r) => r.status === 'missed');
    expect(missed.map((r) => r.missed)).toEqual([{ from: lastBefore + 10_000, count: (newest - lastBefore) / 10_000 - 1, reason: 'no-owner' }]);
  });

  it('skip: records every due tick missed, runs none, and runs the next tick on time', async () => {
    const { lastBefore, returnedAt } = await outage({ every: '10s', misfire: 'skip' }, 120_000);
    const newest = Math.floor(returnedAt / 10_000) * 10_000;
    expect(startsOf('job').filter((s) => s.node === 'b')).toEqual([]);
    const missed = (await records('job')).filter((r) => r.status === 'missed');
    expect(missed.map((r) => [r.missed, r.tick])).toEqual([[{ from: lastBefore + 10_000, count: (newest - lastBefore) / 10_000, reason: 'no-owner' }, newest]]);
    await sim!.advance(10_000, 100);
    const next = startsOf('job').filter((s) => s.node === 'b');
    expect(next.map((s) => s.tick)).toEqual([newest + 10_000]);
    expect(sim!.nodes[1]!.of('run:started')[0]!.lateMs).toBe(0);
    expect(await sim!.lostTicks('job', 10_000)).toEqual([]);
  });

  it('skip with a misfireGrace longer than the lateness: the newest tick is on time and runs', async () => {
    const { returnedAt } = await outage({ every: '10s', misfire: 'skip', misfireGrace: '6s' }, 120_000);
    expect(startsOf('job').filter((s) => s.node === 'b').map((s) => s.tick)).toEqual([Math.floor(returnedAt / 10_000) * 10_000]);
  });

  it('catch up: runs the newest N missed ticks oldest first and records the rest missed', async () => {
    const { lastBefore, returnedAt } = await outage({ every: '10s', misfire: { catchUp: 3 } }, 120_000);
    const newest = Math.floor(returnedAt / 10_000) * 10_000;
    expect(startsOf('job').filter((s) => s.node === 'b').map((s) => s.tick)).toEqual([newest - 20_000, newest - 10_000, newest]);
    const missed = (await records('job')).filter((r) => r.status === 'missed');
    expect(missed.map((r) => r.missed)).toEqual([{ from: lastBefore + 10_000, count: (newest - lastBefore) / 10_000 - 3, reason: 'no-owner' }]);
    expect(missed[0]!.tick).toBe(newest - 30_000);
    expect(await sim!.lostTicks('job', 10_000)).toEqual([]);
    expect(sim!.duplicateTicks()).toBe(0);
  });

  it('catch up with fewer missed ticks than N runs them all', async () => {
    const { lastBefore } = await outage({ every: '10s', misfire: { catchUp: 50 } }, 40_000);
    const after = startsOf('job').filter((s) => s.node === 'b').map((s) => s.tick);
    expect(after[0]).toBe(lastBefore + 10_000);
    expect(after.length).toBeGreaterThanOrEqual(4);
    expect((await records('job')).filter((r) => r.status === 'missed')).toEqual([]);
  });
});

describe('overlap', () => {
  function tracked(ms: number) {
    const state = { active: 0, max: 0 };
    const handler: TaskHandler<never> = async () => {
      state.active += 1;
      state.max = Math.max(state.max, state.active);
      await sleep(S().clock, ms);
      state.active -= 1;
    };
    return { state, handler };
  }

  it('skip (default): a long run makes ticks missed (overlap); the newest of them runs after it', async () => {
    sim = new Sim();
    const { state, handler } = tracked(2500);
    await sim.node('a', [['long', { every: '1s' }, handler]]);
    await sim.advance(12_000);
    expect(state.max).toBe(1);
    const rec = await records('long');
    expect(rec.filter((r) => r.status === 'missed').every((r) => r.missed?.reason === 'overlap')).toBe(true);
    expect(rec.filter((r) => r.status === 'missed').length).toBeGreaterThanOrEqual(3);
    expect(await sim.lostTicks('long', 1000)).toEqual([]);
  });

  it('queue: ticks that fell during a run run after it, one at a time, in order, up to overlapLimit', async () => {
    sim = new Sim();
    const { state, handler } = tracked(2500);
    await sim.node('a', [['queued', { every: '1s', overlap: 'queue', overlapLimit: 2 }, handler]]);
    await sim.advance(20_000);
    expect(state.max).toBe(1);
    const rec = await records('queued');
    const runs = rec.filter((r) => r.status !== 'missed');
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.tick).toBeGreaterThan(runs[i - 1]!.tick);
      if (runs[i - 1]!.endedAt !== undefined) expect(runs[i]!.startedAt!).toBeGreaterThanOrEqual(runs[i - 1]!.endedAt!);
    }
    // The first run overlapped 2 ticks: both were queued and ran (none missed at first).
    expect(runs.slice(0, 3).map((r) => r.tick - runs[0]!.tick)).toEqual([0, 1000, 2000]);
    const missed = rec.filter((r) => r.status === 'missed');
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.every((r) => r.missed?.reason === 'overlap')).toBe(true);
    expect(await sim.lostTicks('queued', 1000)).toEqual([]);
  });

  it('allow: starts the next tick while the previous still runs, on the owner, up to overlapLimit', async () => {
    sim = new Sim();
    const unbounded = tracked(2500);
    const bounded = tracked(2500);
    await sim.node('a', [
      ['parallel', { every: '1s', overlap: 'allow' }, unbounded.handler],
      ['capped', { every: '1s', overlap: 'allow', overlapLimit: 2 }, bounded.handler],
    ]);
    await sim.node('b', [
      ['parallel', { every: '1s', overlap: 'allow' }, unbounded.handler],
      ['capped', { every: '1s', overlap: 'allow', overlapLimit: 2 }, bounded.handler],
    ], { cluster: { rebalanceAfter: '1h' } });
    await sim.advance(10_000);
    expect(unbounded.state.max).toBe(3);
    const parallel = await records('parallel');
    expect(parallel.filter((r) => r.status === 'missed')).toEqual([]);
    expect(new Set(startsOf('parallel').map((s) => s.node)).size).toBe(1);
    expect(await sim.lostTicks('parallel', 1000)).toEqual([]);
    expect(bounded.state.max).toBe(2);
    const capped = await records('capped');
    expect(capped.filter((r) => r.status === 'missed').every((r) => r.missed?.reason === 'overlap' && r.missed.count === 1)).toBe(true);
    expect(capped.filter((r) => r.status === 'missed').length).toBeGreaterThan(0);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('allow: close() aborts every run in progress and waits for them', async () => {
    sim = new Sim();
    let aborted = 0;
    const node = await sim.node('a', [['p', { every: '1s', overlap: 'allow' }, async (ctx) => {
      await sleep(S().clock, 10_000, ctx.signal).catch((error: unknown) => {
        aborted += 1;
        throw error;
      });
    }]]);
    await sim.advance(3500);
    expect(startsOf('p')).toHaveLength(3);
    await node.cluster.close();
    expect(aborted).toBe(3);
    expect((await records('p')).map((r) => r.status)).toEqual(['aborted', 'aborted', 'aborted']);
  });
});

describe('timeout and retries', () => {
  it('timeout aborts ctx.signal with a TimeoutError and records the run as timed-out', async () => {
    sim = new Sim();
    let reason: unknown;
    const node = await sim.node('a', [['slow', { every: '10s', timeout: '500ms' }, async (ctx) => {
      try {
        await sleep(S().clock, 5000, ctx.signal);
      } finally {
        reason = ctx.signal.reason;
      }
    }]]);
    await sim.advance(10_600);
    expect(reason).toBeInstanceOf(TimeoutError);
    expect((reason as TimeoutError).code).toBe('TASK_TIMEOUT');
    expect((reason as TimeoutError).name).toBe('TimeoutError');
    const [rec] = await records('slow');
    expect(rec).toMatchObject({ status: 'timed-out', durationMs: 500 });
    expect(rec!.error).toMatch(/exceeded its timeout of 500ms/);
    expect(node.of('run:finished')[0]).toMatchObject({ outcome: 'timed-out' });
    expect(node.of('owner:lost')).toEqual([]); // a timeout is the run's failure, not the owner's
  });

  it('a handler that returns normally after its timeout fired has succeeded (it ignored the signal)', async () => {
    sim = new Sim();
    await sim.node('a', [['stubborn', { every: '10s', timeout: '100ms' }, () => sleep(S().clock, 300)]]);
    await sim.advance(10_500);
    expect((await records('stubborn')).map((r) => r.status)).toEqual(['succeeded']);
  });

  it('retries a failed run on the same tick with backoff, then succeeds', async () => {
    sim = new Sim();
    const attempts: { attempt: number; at: number; tick: number }[] = [];
    const node = await sim.node('a', [['flaky', { every: '10s', retries: 3, retryBackoff: { initial: '100ms', max: '150ms' } }, (ctx) => {
      attempts.push({ attempt: ctx.attempt, at: S().clock.now(), tick: ctx.tick.getTime() });
      if (ctx.attempt < 3) throw new Error(`boom ${ctx.attempt}`);
    }]]);
    await sim.advance(11_000);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(new Set(attempts.map((a) => a.tick)).size).toBe(1);
    expect(attempts[1]!.at - attempts[0]!.at).toBe(100);
    expect(attempts[2]!.at - attempts[1]!.at).toBe(150); // doubled, capped at max
    expect(await records('flaky')).toMatchObject([{ status: 'succeeded', attempts: 3 }]);
    expect((await records('flaky'))[0]!.error).toBeUndefined();
    expect(node.of('run:retrying').map((r) => [r.attempt, r.delayMs, r.error.message])).toEqual([[2, 100, 'boom 1'], [3, 150, 'boom 2']]);
    expect(node.of('run:started')).toHaveLength(1); // one claim: the tick starts once
  });

  it('records the last error and the attempts when every attempt fails; a timed-out attempt is retried too', async () => {
    sim = new Sim();
    await sim.node('a', [
      ['broken', { every: '10s', retries: 2, retryBackoff: '50ms' }, (ctx) => {
        throw new Error(`attempt ${ctx.attempt} failed`);
      }],
      ['hangs', { every: '10s', retries: 1, retryBackoff: '50ms', timeout: '200ms' }, (ctx) => sleep(S().clock, 1000, ctx.signal)],
    ]);
    await sim.advance(11_000);
    const [broken] = await records('broken');
    expect(broken).toMatchObject({ status: 'failed', attempts: 3 });
    expect(broken!.error).toMatch(/attempt 3 failed/);
    expect(await records('hangs')).toMatchObject([{ status: 'timed-out', attempts: 2, durationMs: 450 }]);
  });

  it('stops retrying when the node shuts down: the run ends aborted', async () => {
    sim = new Sim();
    let calls = 0;
    const node = await sim.node('a', [['x', { every: '10s', retries: 5, retryBackoff: '5s' }, () => {
      calls += 1;
      throw new Error('nope');
    }]]);
    await sim.advance(10_500);
    expect(calls).toBe(1);
    await node.cluster.close();
    expect(calls).toBe(1);
    expect(await records('x')).toMatchObject([{ status: 'aborted', attempts: 1 }]);
  });
});

describe('concurrency', () => {
  it('never runs more than `concurrency` runs of a group at once across 3 nodes', async () => {
    sim = new Sim();
    let active = 0;
    let max = 0;
    let maxSlots = 0;
    const handler: TaskHandler<never> = async () => {
      active += 1;
      max = Math.max(max, active);
      maxSlots = Math.max(maxSlots, (await S().observer.listHolders('slot/g/')).length);
      await sleep(S().clock, 700);
      active -= 1;
    };
    const tasks = Array.from({ length: 6 }, (_, i) => [`t${i}`, { every: '1s', concurrency: 2, concurrencyGroup: 'g' }, handler] as [string, TaskOptions, TaskHandler<never>]);
    for (const id of ['a', 'b', 'c']) await sim.node(id, tasks);
    await sim.advance(20_000);
    expect(max).toBe(2);
    expect(maxSlots).toBeLessThanOrEqual(2);
    expect(new Set(sim.starts.map((s) => s.node)).size).toBeGreaterThanOrEqual(2); // the limit holds across nodes
    const all = (await Promise.all(tasks.map(([t]) => records(t)))).flat();
    const missed = all.filter((r) => r.status === 'missed');
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.every((r) => r.missed?.reason === 'concurrency')).toBe(true);
    expect(all.filter((r) => r.status === 'succeeded').length).toBeGreaterThan(30);
    for (const [t] of tasks) expect(await sim.lostTicks(t, 1000)).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
    // Runs that held a slot released it.
    await sim.advance(1000);
    expect((await sim.observer.listHolders('slot/g/')).length).toBeLessThanOrEqual(2);
  });

  it('a concurrency of 1 on one task with overlap allow is a cluster-wide mutex', async () => {
    sim = new Sim();
    let active = 0;
    let max = 0;
    await sim.node('a', [['m', { every: '1s', overlap: 'allow', concurrency: 1 }, async () => {
      active += 1;
      max = Math.max(max, active);
      await sleep(S().clock, 1500);
      active -= 1;
    }]]);
    await sim.advance(10_000);
    expect(max).toBe(1);
    expect(startsOf('m').length).toBeGreaterThanOrEqual(5);
  });
});

describe('dependencies', () => {
  it('runs A → B → C per tick, across nodes: each starts only after the previous succeeded for the same tick', async () => {
    sim = new Sim();
    const tasks: [string, TaskOptions, TaskHandler<never>][] = [
      ['A', { every: '2s' }, () => sleep(S().clock, 300)],
      ['B', { every: '2s', dependsOn: 'A' }, () => sleep(S().clock, 300)],
      ['C', { every: '2s', dependsOn: ['B'] }, () => sleep(S().clock, 300)],
    ];
    for (const id of ['n1', 'n2', 'n3']) await sim.node(id, tasks);
    await sim.advance(8000);
    await sim.advance(12_000);
    const [a, b, c] = await Promise.all(['A', 'B', 'C'].map(records));
    expect(c!.filter((r) => r.status === 'succeeded').length).toBeGreaterThanOrEqual(5);
    for (const rc of c!.filter((r) => r.status === 'succeeded')) {
      const rb = b!.find((r) => r.tick === rc.tick)!;
      const ra = a!.find((r) => r.tick === rc.tick)!;
      expect(ra.status).toBe('succeeded');
      expect(rb.status).toBe('succeeded');
      expect(rb.startedAt!).toBeGreaterThanOrEqual(ra.endedAt!);
      expect(rc.startedAt!).toBeGreaterThanOrEqual(rb.endedAt!);
    }
    expect(new Set(sim.starts.map((s) => s.node)).size).toBeGreaterThan(1);
  });

  it('records B (and C after it) missed with reason dependency when A fails for a tick', async () => {
    sim = new Sim();
    let failTick: number | undefined;
    const node = await sim.node('n', [
      ['A', { every: '2s' }, (ctx) => {
        failTick ??= ctx.tick.getTime() + 4000;
        if (ctx.tick.getTime() === failTick) throw new Error('A broke');
      }],
      ['B', { every: '2s', dependsOn: 'A' }],
      ['C', { every: '2s', dependsOn: 'B' }],
    ]);
    await sim.advance(12_000);
    const b = (await records('B')).find((r) => r.tick === failTick)!;
    const c = (await records('C')).find((r) => r.tick === failTick)!;
    expect(b).toMatchObject({ status: 'missed', missed: { reason: 'dependency', count: 1 } });
    expect(b.error).toMatch(/task "A" failed/);
    expect(c).toMatchObject({ status: 'missed', missed: { reason: 'dependency' } });
    // The next ticks run again.
    expect((await records('C')).filter((r) => r.tick > failTick! && r.status === 'succeeded').length).toBeGreaterThanOrEqual(2);
    expect(node.of('tick:missed').filter((m) => m.reason === 'dependency')).toHaveLength(2);
  });

  it('gives up after dependencyTimeout when A does not finish in time', async () => {
    sim = new Sim();
    await sim.node('n', [
      ['A', { every: '10s' }, () => sleep(S().clock, 5000)],
      ['B', { every: '10s', dependsOn: 'A', dependencyTimeout: '2s' }],
    ]);
    await sim.advance(13_000);
    const [b] = await records('B');
    expect(b).toMatchObject({ status: 'missed', missed: { reason: 'dependency' } });
    expect(b!.error).toMatch(/within 2000ms/);
  });
});

describe('manual trigger', () => {
  it('runs an extra tick on the owner when called on a node that does not own the task', async () => {
    sim = new Sim();
    const seen: { trigger: boolean; node: string }[] = [];
    const handler = (id: string): TaskHandler<never> => (ctx) => {
      seen.push({ trigger: ctx.trigger, node: id });
    };
    await sim.node('a', [['report', { every: '1h' }, handler('a')]]);
    await sim.node('b', [['report', { every: '1h' }, handler('b')]]);
    await sim.advance(2000);
    const owner = await ownerOf('report');
    const other = sim.nodes.find((n) => n !== owner)!;
    const id = await other.cluster.trigger('report');
    expect(other.of('task:triggered')).toEqual([{ task: 'report', id }]);
    await sim.advance(50, 10);
    expect(seen).toEqual([{ trigger: true, node: owner.id }]);
    const [rec] = await records('report');
    expect(rec).toMatchObject({ status: 'succeeded', trigger: true, triggerId: id, node: owner.id });
    expect(await sim.observer.list('trigger/')).toEqual([]); // consumed
    // Several triggers: each runs once, in order.
    const ids = [await other.cluster.trigger('report'), await owner.cluster.trigger('report'), await other.cluster.trigger('report')];
    await sim.advance(100, 10);
    expect(seen).toHaveLength(4);
    // Oldest first; requests within the same millisecond run in any order.
    expect((await records('report')).map((r) => r.triggerId).sort()).toEqual([id, ...ids].sort());
    expect(sim.nodes.flatMap((n) => n.of('run:started')).map((r) => r.trigger).sort()).toEqual([id, ...ids].sort());
  });

  it('a trigger waiting for a busy owner (overlap skip) runs after the current run; the schedule is not disturbed', async () => {
    sim = new Sim();
    await sim.node('a', [['t', { every: '10s' }, () => sleep(S().clock, 3000)]]);
    await sim.advance(10_500);
    await sim.nodes[0]!.cluster.trigger('t');
    await sim.advance(3000);
    const rec = await records('t');
    expect(rec.map((r) => [r.trigger ?? false, r.status])).toEqual([[false, 'succeeded'], [true, 'running']]);
    await sim.advance(10_000);
    const ticks = (await records('t')).filter((r) => !r.trigger).map((r) => r.tick);
    expect(ticks[1]! - ticks[0]!).toBe(10_000);
    expect(await sim.lostTicks('t', 10_000).then((l) => l.filter((x) => x % 10_000 === 0))).toEqual([]);
  });

  it('refuses a task no node declared', async () => {
    sim = new Sim();
    const a = await sim.node('a', [['t', { every: '1s' }]]);
    await expect(a.cluster.trigger('nope')).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/"nope"/) });
  });
});

describe('pause and resume', () => {
  it('pauses cluster-wide from any node: one growing missed record, status shows it, the running handler is not aborted', async () => {
    sim = new Sim();
    let abortedRuns = 0;
    const handler: TaskHandler<never> = async (ctx: TaskContext<never>) => {
      await sleep(S().clock, 1500);
      if (ctx.signal.aborted) abortedRuns += 1;
    };
    await sim.node('a', [['p', { every: '2s' }, handler]]);
    await sim.node('b', [['p', { every: '2s' }, handler]]);
    await sim.advance(6000);
    await alignTo(2000, 500); // a run is in progress
    const owner = await ownerOf('p');
    const other = sim.nodes.find((n) => n !== owner)!;
    const before = startsOf('p').length;
    await other.cluster.pause('p');
    expect((await other.cluster.status()).tasks.find((t) => t.unit === 'p')!.paused).toBe(true);
    await sim.advance(20_000);
    expect(startsOf('p').length).toBe(before);
    expect(abortedRuns).toBe(0);
    const paused = (await records('p')).filter((r) => r.missed?.reason === 'paused');
    expect(paused).toHaveLength(1);
    expect(paused[0]!.missed!.count).toBe(10);
    // A trigger while paused waits for resume.
    await other.cluster.trigger('p');
    await sim.advance(1000);
    expect(startsOf('p').length).toBe(before);
    await owner.cluster.resume('p');
    await sim.advance(100, 10);
    expect(startsOf('p').length).toBe(before + 1);
    expect((await other.cluster.status()).tasks.find((t) => t.unit === 'p')!.paused).toBe(false);
    await sim.advance(6000);
    expect(startsOf('p').length).toBeGreaterThanOrEqual(before + 3);
    expect(await sim.lostTicks('p', 2000).then((l) => l.filter((x) => x % 2000 === 0))).toEqual([]);
    expect(sim.duplicateTicks()).toBe(0);
  });

  it('stays paused across a hand-over: the new owner extends the same record', async () => {
    sim = new Sim();
    await sim.node('a', [['p', { every: '1s' }]]);
    await sim.node('b', [['p', { every: '1s' }]]);
    await sim.advance(3000);
    await sim.nodes[0]!.cluster.pause('p');
    await sim.advance(3000);
    await (await ownerOf('p')).cluster.close();
    await sim.advance(4000);
    const paused = (await records('p')).filter((r) => r.status === 'missed');
    expect(paused).toHaveLength(1);
    expect(paused[0]!.missed).toMatchObject({ reason: 'paused' });
    expect(paused[0]!.missed!.count).toBeGreaterThanOrEqual(6);
    expect(await sim.lostTicks('p', 1000)).toEqual([]);
  });
});

describe('bad input', () => {
  async function expectRefused(options: unknown, code: BatonErrorCode, ...mentions: RegExp[]): Promise<void> {
    sim = new Sim();
    const node = await sim.node('a', [], { start: false });
    let error: unknown;
    try {
      node.cluster.task('job', options as TaskOptions, () => undefined);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).code).toBe(code);
    for (const m of [/task "job"/, ...mentions]) expect((error as BatonError).message).toMatch(m);
  }

  const cases: [string, unknown, BatonErrorCode, ...RegExp[]][] = [
    ['an unknown option', { every: '1s', retry: 2 }, 'CONFIG_INVALID', /unknown option "retry"/],
    ['an impossible cron (Feb 30)', { cron: '0 0 0 30 2 *' }, 'SCHEDULE_INVALID', /never fires/],
    ['an impossible cron (Apr 31)', { cron: '0 0 31 4 *' }, 'SCHEDULE_INVALID', /never fires/],
    ['at without a zone', { at: '2026-05-01T09:00:00' }, 'SCHEDULE_INVALID', /at/, /zone/],
    ['an invalid at', { at: new Date(NaN) }, 'SCHEDULE_INVALID', /invalid Date/],
    ['at with every', { at: '2026-05-01T09:00:00Z', every: '1s' }, 'CONFIG_INVALID', /exactly one/],
    ['concurrency 0', { every: '1s', concurrency: 0 }, 'CONFIG_INVALID', /concurrency/, /got number 0/],
    ['concurrency 1.5', { every: '1s', concurrency: 1.5 }, 'CONFIG_INVALID', /concurrency/],
    ['concurrencyGroup without concurrency', { every: '1s', concurrencyGroup: 'g' }, 'CONFIG_INVALID', /concurrencyGroup/],
    ['jitter equal to the interval', { every: '10s', jitter: '10s' }, 'CONFIG_INVALID', /jitter \(10000ms\)/, /10000ms/],
    ['jitter above a cron gap', { cron: '*/5 * * * * *', jitter: '6s' }, 'CONFIG_INVALID', /jitter/, /5000ms/],
    ['a bad misfire', { every: '1s', misfire: 'later' }, 'CONFIG_INVALID', /misfire/, /"later"/],
    ['catchUp 0', { every: '1s', misfire: { catchUp: 0 } }, 'CONFIG_INVALID', /misfire.catchUp/],
    ['a bad overlap', { every: '1s', overlap: 'merge' }, 'CONFIG_INVALID', /overlap/, /"merge"/],
    ['overlapLimit with skip', { every: '1s', overlapLimit: 3 }, 'CONFIG_INVALID', /overlapLimit/],
    ['timeout 0', { every: '1s', timeout: 0 }, 'CONFIG_INVALID', /timeout/],
    ['a bad timeout', { every: '1s', timeout: 'soon' }, 'DURATION_INVALID', /timeout/],
    ['negative retries', { every: '1s', retries: -1 }, 'CONFIG_INVALID', /retries/],
    ['retryBackoff without retries', { every: '1s', retryBackoff: '1s' }, 'CONFIG_INVALID', /retryBackoff/],
    ['retryBackoff max below initial', { every: '1s', retries: 1, retryBackoff: { initial: '2s', max: '1s' } }, 'CONFIG_INVALID', /retryBackoff.max/],
    ['dependsOn an empty list', { every: '1s', dependsOn: [] }, 'CONFIG_INVALID', /dependsOn/],
    ['dependencyTimeout without dependsOn', { every: '1s', dependencyTimeout: '1s' }, 'CONFIG_INVALID', /dependencyTimeout/],
  ];
  for (const [what, options, code, ...mentions] of cases) {
    it(`refuses ${what}`, () => expectRefused(options, code, ...mentions));
  }

  async function expectStartRefused(tasks: [string, TaskOptions][], ...mentions: RegExp[]): Promise<void> {
    sim = new Sim();
    const node = await sim.node('a', tasks, { start: false });
    const error = await node.cluster.start().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).code).toBe('CONFIG_INVALID');
    for (const m of mentions) expect((error as BatonError).message).toMatch(m);
    expect(node.cluster.state).toBe('new');
  }

  it('refuses a dependency cycle at start, naming the tasks', () =>
    expectStartRefused(
      [['A', { every: '1s', dependsOn: 'C' }], ['B', { every: '1s', dependsOn: 'A' }], ['C', { every: '1s', dependsOn: 'B' }]],
      /cycle/, /"A" → "C" → "B" → "A"/,
    ));
  it('refuses a task depending on itself', () => expectStartRefused([['A', { every: '1s', dependsOn: 'A' }]], /cycle/, /"A"/));
  it('refuses a dependency on an undeclared task', () => expectStartRefused([['B', { every: '1s', dependsOn: 'ghost' }]], /task "B"/, /"ghost"/));
  it('refuses a dependency with another schedule', () =>
    expectStartRefused([['A', { every: '2s' }], ['B', { every: '1s', dependsOn: 'A' }]], /task "B"/, /"A"/, /another schedule/));
  it('refuses two limits for one concurrency group', () =>
    expectStartRefused(
      [['A', { every: '1s', concurrency: 2, concurrencyGroup: 'g' }], ['B', { every: '1s', concurrency: 3, concurrencyGroup: 'g' }]],
      /"B"/, /"A"/, /concurrencyGroup "g"/,
    ));
});
