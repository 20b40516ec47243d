/**
 * Self-fencing at the moment of action (DESIGN.md invariant 4, issue 18). A paused process wakes with
 * its timers late, and the handler's own continuation (an I/O completion, its own timer) may run before
 * any of baton's timers: whatever the handler asks next must already reflect the local deadline.
 *
 * `FakeClock.pause()` models that wake: time moves past the session's local deadline and nothing fires
 * until the test lets the handler continue; only then do the overdue timers fire.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NotOwnerError } from '../../src/core/errors.js';
import { checkpointKey, runPrefix } from '../../src/scheduler/keys.js';
import type { UnitName } from '../../src/scheduler/names.js';
import type { RunRecord, TaskContext, TaskHandler } from '../../src/scheduler/task.js';
import { settle } from '../../src/testing/fake-clock.js';
import { Sim, type SimNode } from '../helpers/sim.js';

/** TTL 3 s: renewals every 1 s, local deadline 2.4 s after a renewal was sent, store expiry at 3 s. */
const TTL = 3000;
/** Longer than the local deadline is from any instant (≤ 2.4 s), shorter than nothing else matters. */
const PAUSE_PAST_DEADLINE = 2700;

let sim: Sim;
afterEach(async () => {
  await sim?.closeAll();
  expect(sim?.clock.pendingTimers ?? 0).toBe(0);
});

/** A gate the handler waits on: the test opens it once the process "woke" from its pause. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** A handler whose second run waits on `paused` (the moment the process is stopped), then calls `after`. */
function pausingHandler(paused: { wait: Promise<void> }, reached: () => void, after: (ctx: TaskContext<string>) => Promise<void>): TaskHandler<never> {
  let runs = 0;
  return (async (ctx: TaskContext<string>) => {
    if (runs++ === 0) return;
    if (runs > 2) return;
    reached();
    await paused.wait;
    await after(ctx);
  }) as TaskHandler<never>;
}

/** Puts guarded by `token` that `node` sent at or after monotonic time `since`. */
function guardedPutsSince(node: SimNode, token: bigint, since: number): number {
  return node.calls.filter((c) => c.at >= since && c.method === 'put' && (c.args[2] as { guard?: { token: bigint } } | undefined)?.guard?.token === token).length;
}

async function runRecord(task: string, tick: number): Promise<RunRecord | undefined> {
  const records = await sim.observer.list<RunRecord>(runPrefix(task as UnitName));
  return records.find((r) => r.value.tick === tick)?.value;
}

describe('a locally refused write ends the lease', () => {
  it('a commit refused past the local deadline aborts ctx.signal at once and the run ends aborted, not failed', async () => {
    sim = new Sim();
    const paused = gate();
    let reached = false;
    let refused: unknown;
    let abortedAfterRefusal: boolean | undefined;
    const handler = pausingHandler(paused, () => (reached = true), async (ctx) => {
      try {
        await ctx.checkpoint.commit('from a woken zombie');
      } catch (error) {
        refused = error;
        abortedAfterRefusal = ctx.signal.aborted;
        throw error;
      }
    });
    const a = await sim.node('a', [['cp', { every: '1s' }, handler]], { ttl: TTL });
    await sim.until(() => reached, 10_000);
    const run = a.of('run:started').at(-1)!;

    const wokeAt = sim.clock.monotonic() + PAUSE_PAST_DEADLINE;
    sim.clock.pause(PAUSE_PAST_DEADLINE);
    paused.open();
    await settle(); // the handler runs first; no timer of baton's has fired yet
    expect(a.of('session:lost')).toEqual([]);

    expect(refused).toBeInstanceOf(NotOwnerError);
    expect((refused as Error).message).toMatch(/local deadline passed/);
    expect(abortedAfterRefusal).toBe(true);
    expect(guardedPutsSince(a, run.token, wokeAt)).toBe(0); // refused locally: nothing was sent
    await sim.advance(100);
    const record = await runRecord('cp', run.tick);
    expect(record?.status).toBe('aborted');
    expect(record?.error).toMatch(/NotOwnerError/);
    expect(a.of('run:failed').at(-1)).toMatchObject({ tick: run.tick, outcome: 'aborted' });
    expect((await sim.observer.get<{ value: string }>(checkpointKey('cp' as UnitName)))?.value.value).not.toBe('from a woken zombie');
  });

  it('a commit the store refuses (the session was dropped behind the node’s back) ends the run aborted too', async () => {
    sim = new Sim();
    const paused = gate();
    let reached = false;
    let refused: unknown;
    let abortedAfterRefusal: boolean | undefined;
    const handler = pausingHandler(paused, () => (reached = true), async (ctx) => {
      try {
        await ctx.checkpoint.commit('after the store dropped us');
      } catch (error) {
        refused = error;
        abortedAfterRefusal = ctx.signal.aborted;
        throw error;
      }
    });
    const a = await sim.node('a', [['cp', { every: '1s' }, handler]], { ttl: TTL });
    await sim.until(() => reached, 10_000);
    const run = a.of('run:started').at(-1)!;
    const [session] = await sim.observer.listSessions();
    await sim.observer.closeSession(session!.id);
    paused.open();
    await settle();

    expect(refused).toBeInstanceOf(NotOwnerError);
    expect((refused as Error).message).toMatch(/superseded/);
    expect(abortedAfterRefusal).toBe(true);
    await sim.advance(100);
    expect((await runRecord('cp', run.tick))?.status).toBe('aborted');
  });
});

/** What a handler can ask first after waking, each in its own scenario; each must report the loss. */
const probes: [string, (ctx: TaskContext<string>) => Promise<boolean> | boolean][] = [
  ['ctx.signal.aborted', (ctx) => ctx.signal.aborted],
  ['ctx.signal.reason', (ctx) => ctx.signal.reason instanceof Error],
  ['ctx.signal.throwIfAborted()', (ctx) => throws(() => ctx.signal.throwIfAborted())],
  ['ctx.assertOwner()', (ctx) => throws(() => ctx.assertOwner(), NotOwnerError)],
  ['ctx.checkpoint.get()', (ctx) => ctx.checkpoint.get().then(() => false, (e: unknown) => e instanceof NotOwnerError)],
];

function throws(fn: () => void, type: new (...args: never[]) => Error = Error): boolean {
  try {
    fn();
    return false;
  } catch (error) {
    return error instanceof type;
  }
}

describe('a claim answered to a paused process', () => {
  it('does not start the handler when the process wakes past its local deadline', async () => {
    sim = new Sim();
    const invoked: number[] = [];
    const a = await sim.node('a', [['cp', { every: '1s' }, (ctx) => void invoked.push(ctx.tick.getTime())]], { ttl: TTL });
    await sim.until(() => invoked.length >= 2, 10_000);
    // The next claim is answered, and the process is stopped before it reads the answer.
    const put = a.store.put.bind(a.store);
    let pausedTick: number | undefined;
    (a.store as unknown as { put: typeof put }).put = async (key, value, condition) => {
      const result = await put(key, value, condition);
      if (pausedTick === undefined && key.startsWith('run/') && condition?.ifVersion === 'absent' && result.ok) {
        pausedTick = (value as RunRecord).tick;
        sim.clock.pause(PAUSE_PAST_DEADLINE);
      }
      return result;
    };
    await sim.until(() => pausedTick !== undefined, 10_000);
    await settle();
    expect(invoked).not.toContain(pausedTick);
    await sim.advance(100);
    expect(a.of('run:failed').filter((r) => r.tick === pausedTick).map((r) => r.outcome)).toEqual(['aborted']);
    expect(a.of('owner:lost')).toHaveLength(1);
  });
});

describe('the handler knows it lost before its next step', () => {
  it.each(probes)('%s, asked first after a pause past the local deadline, reports the loss before any timer of baton’s ran', async (_name, probe) => {
    sim = new Sim();
    const paused = gate();
    let reached = false;
    let sawLoss: boolean | undefined;
    let signalAbortedAfter: boolean | undefined;
    let lostEventsThen: number | undefined;
    let a!: SimNode;
    const handler = pausingHandler(paused, () => (reached = true), async (ctx) => {
      lostEventsThen = a.of('session:lost').length;
      sawLoss = await probe(ctx);
      signalAbortedAfter = ctx.signal.aborted;
    });
    a = await sim.node('a', [['cp', { every: '1s' }, handler]], { ttl: TTL });
    await sim.until(() => reached, 10_000);
    const run = a.of('run:started').at(-1)!;

    sim.clock.pause(PAUSE_PAST_DEADLINE);
    paused.open();
    await settle();
    expect(lostEventsThen).toBe(0); // the keeper's timers had not run: only the check itself could tell
    expect(sawLoss).toBe(true);
    expect(signalAbortedAfter).toBe(true);
    await sim.advance(100);
    expect(a.of('session:lost')).toHaveLength(1); // the keeper catches up, and opens a new session
    expect(a.of('owner:lost').at(-1)).toMatchObject({ token: run.token });
  });

  it('while the lease holds, assertOwner() passes, the signal stays unaborted and checkpoint.get() reads', async () => {
    sim = new Sim();
    const seen: { aborted: boolean; assertOwner: boolean; value: string | undefined }[] = [];
    const handler = (async (ctx: TaskContext<string>) => {
      seen.push({ aborted: ctx.signal.aborted, assertOwner: !throws(() => ctx.assertOwner()), value: await ctx.checkpoint.get() });
      await ctx.checkpoint.commit(`run ${seen.length}`);
    }) as TaskHandler<never>;
    await sim.node('a', [['cp', { every: '1s' }, handler]], { ttl: TTL });
    await sim.advance(3500);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.every((s) => !s.aborted && s.assertOwner)).toBe(true);
    expect(seen.map((s) => s.value).slice(0, 3)).toEqual([undefined, 'run 1', 'run 2']);
  });

  it('a woken zombie that calls assertOwner() right before its external write never gets a stale write in', async () => {
    sim = new Sim();
    // The user's own resource, fenced as docs/concepts.md recommends: UPDATE … WHERE token <= $token.
    const external = { token: 0n, value: '', accepted: [] as { node: string; token: bigint }[], refused: 0 };
    const write = (node: string, token: bigint, value: string) => {
      if (token < external.token) {
        external.refused += 1;
        return;
      }
      external.token = token;
      external.value = value;
      external.accepted.push({ node, token });
    };
    const paused = gate();
    let reached = false;
    let zombieError: unknown;
    const zombie = pausingHandler(paused, () => (reached = true), async (ctx) => {
      try {
        ctx.assertOwner();
        write('a', ctx.token, 'from a');
      } catch (error) {
        zombieError = error;
        throw error;
      }
    });
    const successor = (async (ctx: TaskContext<string>) => {
      ctx.assertOwner();
      write('b', ctx.token, 'from b');
    }) as TaskHandler<never>;
    const a = await sim.node('a', [['cp', { every: '1s' }, zombie]], { ttl: TTL, cluster: { rebalanceAfter: '1h' } });
    await sim.advance(500);
    const b = await sim.node('b', [['cp', { every: '1s' }, successor]], { ttl: TTL, cluster: { rebalanceAfter: '1h' } });
    await sim.until(() => reached, 10_000);
    const zombieToken = a.of('run:started').at(-1)!.token;
    const acceptedBefore = external.accepted.length;

    sim.clock.pause(4000); // past the store's TTL too: b may take the task as soon as its timers run
    paused.open();
    await settle();
    await sim.advance(3000);

    expect(zombieError).toBeInstanceOf(NotOwnerError);
    expect(external.accepted.slice(acceptedBefore).filter((w) => w.token === zombieToken)).toEqual([]);
    const bToken = b.of('owner:acquired')[0]?.token;
    expect(bToken).toBeGreaterThan(zombieToken);
    expect(external.accepted.at(-1)).toMatchObject({ node: 'b', token: bToken });
    expect(external.refused).toBe(0);
    expect(sim.duplicateTicks()).toBe(0);
  });
});

/** The user's own resource, fenced as docs/concepts.md recommends: UPDATE … SET token = $t WHERE token <= $t. */
class FencedResource {
  token = 0n;
  readonly accepted: { who: string; token: bigint }[] = [];
  readonly refused: { who: string; token: bigint }[] = [];

  write(who: string, token: bigint): void {
    if (token < this.token) {
      this.refused.push({ who, token });
      return;
    }
    this.token = token;
    this.accepted.push({ who, token });
  }
}

describe('onAcquire: the new owner fences the user’s resource before its first run', () => {
  it('runs before the first run of each ownership, with that ownership’s token', async () => {
    sim = new Sim();
    const calls: { token: bigint; runsBefore: number; aborted: boolean }[] = [];
    let runs = 0;
    const a = await sim.node('a', [['cp', { every: '1s', onAcquire: (ctx) => void calls.push({ token: ctx.token, runsBefore: runs, aborted: ctx.signal.aborted }) }, () => void runs++]], { ttl: TTL });
    await sim.advance(2500);
    expect(runs).toBeGreaterThan(0);
    expect(calls).toEqual([{ token: a.of('owner:acquired')[0]!.token, runsBefore: 0, aborted: false }]);

    await sim.clock.stall(5000); // loses its session, takes the task again under a new token
    await sim.advance(2000);
    const tokens = a.of('owner:acquired').map((e) => e.token);
    expect(tokens).toHaveLength(2);
    expect(calls.map((c) => c.token)).toEqual(tokens);
    const runsBeforeSecond = calls[1]!.runsBefore;
    expect(a.of('run:started').filter((r) => r.token === tokens[1]).length).toBe(runs - runsBeforeSecond);
  });

  it('runs nothing while the hook fails, reports it, and calls it again about a second later', async () => {
    sim = new Sim();
    const calledAt: number[] = [];
    const onAcquire = () => {
      calledAt.push(sim.clock.monotonic());
      if (calledAt.length === 1) throw new Error('resource unreachable');
    };
    const a = await sim.node('a', [['cp', { every: '1s', onAcquire }]], { ttl: TTL });
    await sim.until(() => calledAt.length === 2, 5000);
    expect(a.of('run:started')).toEqual([]); // nothing ran under the ownership whose hook failed
    expect(a.of('error').map((e) => e.error.message)).toContain('resource unreachable');
    expect(calledAt[1]! - calledAt[0]!).toBeGreaterThanOrEqual(1000);
    await sim.advance(1500);
    expect(a.of('run:started').length).toBeGreaterThan(0);
  });

  it('refuses a woken zombie’s late write before the successor’s first write (without the hook it is accepted)', async () => {
    for (const fence of [true, false]) {
      sim = new Sim();
      const resource = new FencedResource();
      const onAcquire = (who: string) => (ctx: { token: bigint }) => {
        if (fence) resource.write(`${who} onAcquire`, ctx.token);
      };
      const paused = gate();
      let reached = false;
      // A handler that ignores its signal and checks nothing: only the resource's own fence can stop it.
      const zombie = pausingHandler(paused, () => (reached = true), async (ctx) => resource.write('a run', ctx.token));
      let bFenced = false;
      const bHook = (ctx: { token: bigint }) => {
        onAcquire('b')(ctx);
        bFenced = true;
      };
      const opts = { ttl: TTL, cluster: { rebalanceAfter: '1h' } };
      await sim.node('a', [['cp', { every: '1s', onAcquire: onAcquire('a') }, zombie]], opts);
      await sim.advance(500);
      // b's runs do not touch the resource: what refuses the zombie can only be b's hook.
      const b = await sim.node('b', [['cp', { every: '1s', onAcquire: bHook }]], opts);
      await sim.until(() => reached, 10_000);

      sim.clock.pause(4000); // a is stopped past the store's TTL
      await sim.until(() => bFenced, 5000); // b took the task over; a's handler has not continued yet
      expect(b.of('owner:acquired')).toHaveLength(1);
      paused.open();
      await settle();

      const zombieWrites = (list: { who: string }[]) => list.filter((w) => w.who === 'a run');
      if (fence) {
        expect(zombieWrites(resource.refused)).toHaveLength(1);
        expect(zombieWrites(resource.accepted)).toEqual([]);
        expect(resource.token).toBe(b.of('owner:acquired')[0]!.token);
      } else {
        expect(zombieWrites(resource.accepted)).toHaveLength(1); // the negative control: the window is real
      }
      await sim.closeAll();
    }
  });
});
