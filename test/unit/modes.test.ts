/**
 * Placement modes on a simulated fleet (memory store, one FakeClock): preferred with fail-back and
 * hysteresis (and regions), mutex, round-robin, broadcast, sharded, dispatch — with joins and leaves,
 * owners lost mid-run, and conflicting declarations. Deterministic: time moves only when the test says.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../src/core/clock.js';
import { createCluster } from '../../src/node/node.js';
import { silentLogger } from '../../src/core/logger.js';
import type { ItemContext, ProducerContext, TaskContext, TaskOptions } from '../../src/scheduler/task.js';
import { TASK_OWNER_PREFIX } from '../../src/scheduler/keys.js';
import { Sim } from '../helpers/sim.js';

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

const startsOf = (unit: string) => sim.starts.filter((s) => s.unit === unit);
const labels = (region: string) => ({ cluster: { node: { labels: { region } } } });

/** Advances until the wall clock is `offsetMs` past a whole multiple of `periodMs`. */
async function alignTo(periodMs: number, offsetMs: number): Promise<void> {
  const delta = (((offsetMs - (sim.clock.now() % periodMs)) % periodMs) + periodMs) % periodMs;
  if (delta > 0) await sim.advance(delta, 10);
}

describe('preferred', () => {
  const task = (prefer: TaskOptions['prefer'], extra: Partial<TaskOptions> = {}): [string, TaskOptions] => [
    'report',
    { every: '1s', mode: 'preferred', prefer, failbackAfter: '10s', ...extra },
  ];

  it('runs in the preferred region, falls over only when none of its nodes is alive, fails back after failbackAfter', async () => {
    sim = new Sim();
    const eu1 = await sim.node('eu-1', [task({ region: 'eu' })], labels('eu'));
    const eu2 = await sim.node('eu-2', [task({ region: 'eu' })], labels('eu'));
    const us = await sim.node('us-1', [task({ region: 'eu' })], labels('us'));
    await sim.advance(3000);
    expect(['eu-1', 'eu-2']).toContain((await sim.owners()).get('report'));

    // One eu node goes: the other eu node takes over, never the us node.
    const first = (await sim.owners()).get('report') as string;
    const second = first === 'eu-1' ? eu2 : eu1;
    sim.backend.sever((first === 'eu-1' ? eu1 : eu2).store);
    await sim.advance(8000);
    expect((await sim.owners()).get('report')).toBe(second.id);
    // The last eu node goes: only now does the us node run it.
    sim.backend.sever(second.store);
    await sim.advance(8000);
    expect((await sim.owners()).get('report')).toBe('us-1');
    expect(startsOf('report').filter((s) => s.node === 'us-1').length).toBeGreaterThan(0);

    // An eu node returns: the task stays on us-1 for failbackAfter (10s), then moves back between runs.
    const back = await sim.node('eu-3', [task({ region: 'eu' })], labels('eu'));
    await sim.advance(8000);
    expect((await sim.owners()).get('report')).toBe('us-1');
    await sim.advance(4000);
    expect((await sim.owners()).get('report')).toBe('eu-3');
    expect(us.of('owner:released').map((r) => r.reason)).toEqual(['rebalance']);
    expect(back.of('owner:acquired')).toHaveLength(1);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('report', 1000)).toEqual([]);
  });

  it('does not bounce the task to a flapping primary (hysteresis)', async () => {
    sim = new Sim();
    const b = await sim.node('backup', [task([{ node: 'primary' }])]);
    await sim.advance(3000);
    expect((await sim.owners()).get('report')).toBe('backup');
    // The primary comes and goes, never staying up for failbackAfter (10s).
    for (let i = 0; i < 4; i++) {
      const p = await sim.node('primary', [task([{ node: 'primary' }])]);
      await sim.advance(6000);
      await p.cluster.close();
      sim.nodes.splice(sim.nodes.indexOf(p), 1);
      await sim.advance(1000);
    }
    expect(b.of('owner:released')).toEqual([]);
    expect(b.of('owner:acquired')).toHaveLength(1);
    expect(startsOf('report').every((s) => s.node === 'backup')).toBe(true);
    // Once it stays, the task fails back to it.
    await sim.node('primary', [task([{ node: 'primary' }])]);
    await sim.advance(12_000);
    expect((await sim.owners()).get('report')).toBe('primary');
  });

  it('ranks by the order of the selectors: first, then second, then anyone', async () => {
    sim = new Sim();
    const prefer = [{ node: 'a' }, { node: 'b' }];
    const a = await sim.node('a', [task(prefer)]);
    const b = await sim.node('b', [task(prefer)]);
    await sim.node('c', [task(prefer)]);
    await sim.advance(3000);
    expect((await sim.owners()).get('report')).toBe('a');
    sim.backend.sever(a.store);
    await sim.advance(8000);
    expect((await sim.owners()).get('report')).toBe('b');
    sim.backend.sever(b.store);
    await sim.advance(8000);
    expect((await sim.owners()).get('report')).toBe('c');
  });
});

describe('mutex', () => {
  it('runs each tick once, holds nothing between ticks, and loses no time when a node dies between ticks', async () => {
    sim = new Sim();
    const handler = () => sleep(sim.clock, 200);
    const nodes = [];
    for (const id of ['a', 'b', 'c']) nodes.push(await sim.node(id, [['job', { every: '1s', mode: 'mutex' }, handler]]));
    await sim.advance(5000);
    await alignTo(1000, 600);
    // Between ticks (after the 200 ms run), nobody holds the task.
    expect(await sim.observer.listHolders(TASK_OWNER_PREFIX)).toEqual([]);
    // Kill whichever node ran last, between ticks: the next tick still starts on time elsewhere.
    const last = startsOf('job').at(-1)!.node;
    const victim = nodes.find((n) => n.id === last)!;
    sim.backend.sever(victim.store);
    const tickAfter = Math.ceil(sim.clock.now() / 1000) * 1000;
    await sim.advance(5000);
    const next = startsOf('job').find((s) => s.tick === tickAfter);
    expect(next?.node).not.toBe(last);
    const record = (await sim.runRecords('job')).find((r) => r.value.tick === tickAfter);
    expect(record?.value.lateMs).toBe(0);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('job', 1000)).toEqual([]);
    for (const n of nodes.filter((n) => n !== victim)) expect(n.of('error')).toEqual([]);
  });

  it('fences checkpoints per turn and passes the last commit on to whichever node wins next', async () => {
    sim = new Sim();
    const seen: number[] = [];
    const handler = async (ctx: TaskContext<number>) => {
      const last = (await ctx.checkpoint.get()) ?? 0;
      seen.push(last);
      await ctx.checkpoint.commit(last + 1);
    };
    for (const id of ['a', 'b']) await sim.node(id, [['count', { every: '1s', mode: 'mutex' }, handler as never]]);
    await sim.advance(10_000);
    expect(seen.length).toBeGreaterThanOrEqual(9);
    expect(seen).toEqual(seen.map((_, i) => i));
  });
});

describe('round-robin', () => {
  it('takes turns tick by tick over the live nodes, and steps over a node that died', async () => {
    sim = new Sim();
    const nodes = [];
    for (const id of ['a', 'b', 'c']) nodes.push(await sim.node(id, [['turn', { every: '1s', mode: 'round-robin' }]]));
    await sim.advance(2000);
    await alignTo(1000, 500);
    const from = sim.starts.length;
    await sim.advance(9000);
    const order = startsOf('turn').slice(from - sim.starts.length || undefined).map((s) => s.node);
    const window = startsOf('turn').filter((s) => s.tick >= sim.clock.now() - 9000).map((s) => s.node);
    expect(window).toHaveLength(9);
    // a → b → c → a … : every node's successor is the next id.
    for (let i = 1; i < window.length; i++) {
      const expected = { a: 'b', b: 'c', c: 'a' }[window[i - 1] as 'a' | 'b' | 'c'];
      expect(window[i], `turn ${i} of ${window.join(',')}`).toBe(expected);
    }
    expect(order.length).toBeGreaterThan(0);

    // b dies between ticks: its turn is taken by another node after claimDelay, then a and c alternate.
    sim.backend.sever(nodes[1]!.store);
    await sim.advance(12_000);
    const after = startsOf('turn').filter((s) => s.tick >= sim.clock.now() - 6000).map((s) => s.node);
    expect(after.every((n) => n !== 'b')).toBe(true);
    for (let i = 1; i < after.length; i++) expect(after[i]).not.toBe(after[i - 1]);
    expect(sim.duplicateTicks()).toBe(0);
    expect(await sim.lostTicks('turn', 1000)).toEqual([]);
    // Ticks stayed on time except the one whose node had just died (claimDelay late at most).
    const late = (await sim.runRecords('turn')).map((r) => r.value.lateMs ?? 0);
    expect(Math.max(...late)).toBeLessThanOrEqual(400);
  });
});

describe('broadcast', () => {
  it('runs every tick on every node, each with its own records; a node joining starts at the next tick', async () => {
    sim = new Sim();
    const ctxs: { unit: string; node: string }[] = [];
    const handler = (ctx: TaskContext) => void ctxs.push({ unit: ctx.unit, node: ctx.node.id });
    await sim.node('a', [['refresh', { every: '1s', mode: 'broadcast' }, handler]]);
    await sim.node('b', [['refresh', { every: '1s', mode: 'broadcast' }, handler]]);
    await sim.advance(5000);
    await sim.node('c', [['refresh', { every: '1s', mode: 'broadcast' }, handler]]);
    await sim.advance(5000);
    for (const id of ['a', 'b', 'c']) {
      const ticks = startsOf(`refresh@${id}`).map((s) => s.tick);
      expect(ticks.length).toBeGreaterThanOrEqual(id === 'c' ? 4 : 9);
      expect(new Set(ticks).size).toBe(ticks.length);
      expect(startsOf(`refresh@${id}`).every((s) => s.node === id)).toBe(true);
      expect(await sim.lostTicks(`refresh@${id}`, 1000)).toEqual([]);
    }
    expect(ctxs.every((c) => c.unit === `refresh@${c.node}`)).toBe(true);
  });
});

describe('sharded', () => {
  it('spreads shards evenly, rebalances on join and leave, each shard owned and fenced on its own', async () => {
    sim = new Sim();
    const seen = new Map<string, { index: number; count: number; item?: string }>();
    const handler = (ctx: TaskContext) => void seen.set(ctx.unit, { ...ctx.shard! });
    const decl: [string, TaskOptions, (ctx: TaskContext) => void] = ['index', { every: '1s', mode: 'sharded', shards: 6 }, handler];
    const a = await sim.node('a', [decl]);
    await sim.node('b', [decl]);
    await sim.advance(8000);
    const counts = () => sim.ownedCounts();
    expect(Object.fromEntries(await counts())).toEqual({ a: 3, b: 3 });
    await sim.node('c', [decl]);
    await sim.advance(8000);
    expect(Object.fromEntries(await counts())).toEqual({ a: 2, b: 2, c: 2 });
    // a dies: its two shards go to b and c within TTL (3s) + a scan.
    sim.backend.sever(a.store);
    await sim.advance(5000);
    expect(Object.fromEntries(await counts())).toEqual({ b: 3, c: 3 });
    expect([...seen.keys()].sort()).toEqual(['index#0', 'index#1', 'index#2', 'index#3', 'index#4', 'index#5']);
    expect(seen.get('index#4')).toEqual({ index: 4, count: 6 });
    expect(sim.duplicateTicks()).toBe(0);
    for (let i = 0; i < 6; i++) expect(await sim.lostTicks(`index#${i}`, 1000)).toEqual([]);
  });

  it('gives each shard its item and its own checkpoint; an owner lost mid-run aborts and the next resumes from the checkpoint', async () => {
    sim = new Sim();
    const progress: { unit: string; item?: string; from: number; node: string }[] = [];
    const handler = async (ctx: TaskContext<number>) => {
      const from = (await ctx.checkpoint.get()) ?? 0;
      progress.push({ unit: ctx.unit, item: ctx.shard?.item, from, node: ctx.node.id });
      await ctx.checkpoint.commit(from + 1);
      // Longer than the lease deadline: a run cut off from the store is aborted by self-fencing.
      await sleep(sim.clock, 6000, ctx.signal);
      await ctx.checkpoint.commit(from + 2);
    };
    const decl: [string, TaskOptions, never] = ['pull', { every: '10s', mode: 'sharded', shards: ['eu', 'us'] }, handler as never];
    const a = await sim.node('a', [decl]);
    const b = await sim.node('b', [decl]);
    await sim.advance(25_000);
    await alignTo(10_000, 1000); // one second into a run
    const victim = (await sim.owners()).get('pull#0') === 'a' ? a : b;
    const before = progress.filter((p) => p.unit === 'pull#0').length;
    sim.backend.sever(victim.store);
    await sim.advance(20_000);
    const eu = progress.filter((p) => p.unit === 'pull#0');
    expect(eu.every((p) => p.item === 'eu')).toBe(true);
    expect(progress.filter((p) => p.unit === 'pull#1').every((p) => p.item === 'us')).toBe(true);
    // The run cut off aborted (self-fencing) …
    expect(victim.of('run:finished').filter((f) => f.unit === 'pull#0').at(-1)?.outcome).toBe('aborted');
    // … and the next owner started from its last commit (from + 1), never going backwards.
    const cut = eu[before - 1]!;
    const next = eu[before]!;
    expect(cut.node).toBe(victim.id);
    expect(next.node).not.toBe(victim.id);
    expect(next.from).toBe(cut.from + 1);
    for (let i = 1; i < eu.length; i++) expect(eu[i]!.from).toBeGreaterThan(eu[i - 1]!.from);
  });
});

describe('dispatch', () => {
  it('the producer enqueues, every node consumes, each item acknowledged once; failures retry then dead-letter', async () => {
    sim = new Sim();
    const done: { id: string; node: string }[] = [];
    const attempts = new Map<string, number>();
    let produced = 0;
    const handlers = {
      produce: async (ctx: ProducerContext<{ n: number }>) => {
        for (let i = 0; i < 10; i++) await ctx.enqueue({ n: produced++ });
        // Idempotent producer: the same failed-record id is enqueued once while queued.
        await ctx.enqueue({ n: -1 }, { id: 'poison' });
      },
      consume: async (item: ItemContext<{ n: number }>) => {
        attempts.set(item.id, (attempts.get(item.id) ?? 0) + 1);
        await sleep(sim.clock, 50, item.signal);
        if (item.payload.n < 0) throw new Error('cannot process');
        done.push({ id: item.id, node: item.node.id });
      },
    };
    const opts: TaskOptions = { every: '1s', mode: 'dispatch', queue: { maxAttempts: 3, backoff: '200ms', workers: 2 } };
    const nodes = [];
    for (const id of ['a', 'b', 'c']) nodes.push(await sim.node(id, [['reprocess', opts, handlers as never]]));
    await sim.advance(3500);
    // Stop producing (pause) and drain.
    await nodes[0]!.cluster.pause('reprocess');
    await sim.advance(5000);
    expect(produced).toBeGreaterThanOrEqual(20);
    expect(done).toHaveLength(produced);
    expect(new Set(done.map((d) => d.id)).size).toBe(produced);
    // Spread over the nodes.
    expect(new Set(done.map((d) => d.node)).size).toBe(3);
    // The poison item: 3 deliveries, then dead-lettered with its error; nothing left queued.
    expect(attempts.get('poison')).toBe(3);
    const dead = await nodes[1]!.cluster.deadLetters('reprocess');
    expect(dead.map((d) => [d.id, d.attempts])).toEqual([['poison', 3]]);
    expect(dead[0]!.lastError).toMatch(/cannot process/);
    expect(await sim.observer.list('queue/reprocess/')).toEqual([]);
    expect(nodes.flatMap((n) => n.of('item:finished')).filter((f) => f.outcome === 'dead')).toHaveLength(1);
    // Requeued by hand, it goes through the deliveries again.
    expect(await nodes[2]!.cluster.requeueDeadLetter('reprocess', 'poison')).toBe(true);
    await sim.advance(3000);
    expect(attempts.get('poison')).toBe(6);
  });

  it('redelivers an item whose consumer died after the visibility timeout; a stalled consumer loses it and sees its signal abort', async () => {
    sim = new Sim();
    const deliveries: { node: string; attempt: number }[] = [];
    const finished: string[] = [];
    let producedOnce = false;
    const handlers = {
      produce: async (ctx: ProducerContext<string>) => {
        if (producedOnce) return;
        producedOnce = true;
        await ctx.enqueue('only', { id: 'only' });
      },
      consume: async (item: ItemContext<string>) => {
        deliveries.push({ node: item.node.id, attempt: item.attempt });
        await sleep(sim.clock, deliveries.length === 1 ? 60_000 : 100, item.signal);
        finished.push(item.node.id);
      },
    };
    const opts: TaskOptions = { every: '1s', mode: 'dispatch', queue: { visibilityTimeout: '5s' } };
    const a = await sim.node('a', [['one', opts, handlers as never]]);
    await sim.advance(1500);
    expect(deliveries).toEqual([{ node: 'a', attempt: 1 }]);
    // Node a's store connection dies: it can no longer extend the item's visibility.
    await sim.node('b', [['one', opts, handlers as never]]);
    sim.backend.sever(a.store);
    await sim.advance(8000);
    expect(deliveries.map((d) => d.node)).toEqual(['a', 'b']);
    expect(deliveries[1]!.attempt).toBe(2);
    expect(finished).toEqual(['b']);
    expect(await sim.observer.list('queue/one/')).toEqual([]);
  });
});

describe('conflicting declarations', () => {
  it('runs one version only, reports the conflict naming the fields, and switches when the old version is gone', async () => {
    sim = new Sim();
    const old = await sim.node('old', [['sync', { every: '1s', timeout: '5s' }]]);
    await sim.advance(2000);
    const neu = await sim.node('new', [['sync', { every: '2s' }]]);
    await sim.advance(6000);
    // The older node's version runs; the new node stays out of the task and is told why.
    expect(startsOf('sync').every((s) => s.node === 'old')).toBe(true);
    const conflict = neu.of('task:conflict')[0];
    expect(conflict?.excluded).toBe(true);
    expect(conflict?.error.message).toMatch(/task "sync".*schedule, timeout/);
    expect(old.of('task:conflict')[0]?.excluded).toBe(false);
    const status = await old.cluster.status();
    expect(status.tasks.find((t) => t.unit === 'sync')?.schedules.toSorted()).toEqual(['every 1s', 'every 2s']);
    // The old version leaves: the new one takes over, on its schedule.
    await old.cluster.close();
    await sim.advance(6000);
    const fresh = startsOf('sync').filter((s) => s.node === 'new');
    expect(fresh.length).toBeGreaterThanOrEqual(2);
    expect(fresh.every((s) => s.tick % 2000 === 0)).toBe(true);
  });
});

describe('bad input', () => {
  const reject = async (options: unknown, pattern: RegExp, handler: unknown = () => undefined) => {
    sim = new Sim();
    const cluster = await createCluster({ store: sim.observer, clock: sim.clock, logger: silentLogger, name: 'sim' });
    expect(() => cluster.task('t', options as TaskOptions, handler as never)).toThrow(pattern);
  };
  it.each([
    [{ every: '1s', mode: 'leader' }, /task "t": mode must be one of "singleton", "preferred"/],
    [{ every: '1s', mode: 'sharded', shards: 0 }, /task "t": shards must be an integer from 1/],
    [{ every: '1s', mode: 'sharded' }, /task "t": mode "sharded" needs shards/],
    [{ every: '1s', mode: 'sharded', shards: ['a', 'a'] }, /shards lists an item twice/],
    [{ every: '1s', shards: 3 }, /task "t": shards applies to mode "sharded" only/],
    [{ every: '1s', mode: 'preferred' }, /task "t": mode "preferred" needs prefer/],
    [{ every: '1s', mode: 'preferred', prefer: [{}] }, /prefer\[0\]: an empty selector/],
    [{ every: '1s', mode: 'preferred', prefer: { region: 1 } }, /prefer.region: must be a string/],
    [{ every: '1s', mode: 'broadcast', failbackAfter: '1s' }, /failbackAfter applies to mode "preferred" only/],
    [{ every: '1s', mode: 'dispatch', queue: { workers: 0 } }, /task "t": queue.workers: must be an integer from 1 to 100, got number 0/],
    [{ every: '1s', mode: 'dispatch', queue: { visibility: '1s' } }, /queue: unknown option "visibility"/],
    [{ every: '1s', mode: 'dispatch', queue: { visibilityTimeout: '10ms' } }, /visibilityTimeout must be at least 1s/],
    [{ every: '1s', concurrency: 0 }, /task "t": concurrency: must be an integer from 1/],
    [{ cron: '0 0 0 30 2 *' }, /task "t"/],
  ])('rejects %j', async (options, pattern) => reject(options, pattern));

  it('rejects a dispatch task without { produce, consume }', async () => {
    await reject({ every: '1s', mode: 'dispatch' }, /mode "dispatch" needs handlers \{ produce\(ctx\), consume\(item\) \}/);
  });

  it('rejects a dependency on a sharded or broadcast task at start', async () => {
    sim = new Sim();
    const cluster = await createCluster({ store: sim.observer, clock: sim.clock, logger: silentLogger, name: 'sim' });
    cluster.task('a', { every: '1s', mode: 'sharded', shards: 2 }, () => undefined);
    cluster.task('b', { every: '1s', dependsOn: 'a' }, () => undefined);
    await expect(cluster.start()).rejects.toThrow(/task "b": dependsOn: task "a" is sharded/);
  });
});
