/**
 * The session keeper: one heartbeat per node, and self-fencing (DESIGN.md invariant 4): a node that cannot
 * prove its session alive stops acting before the store can give its keys to another node.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionKeeper, type LiveSession, type SessionEvents } from '../../src/cluster/session-keeper.js';
import { resolveSessionTiming, type SessionTimingOptions } from '../../src/cluster/session-timing.js';
import { ClosedError, SessionExpiredError, StoreUnavailableError } from '../../src/core/errors.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { sleep } from '../../src/core/clock.js';
import { failCalls, recordingStore, Sim, testNodeInfo } from '../helpers/sim.js';

interface KeeperEvent {
  readonly event: keyof SessionEvents;
  readonly payload: unknown;
  readonly at: number;
}

const TIMING: SessionTimingOptions = { ttl: 3000, renewEvery: 1000, safetyMargin: 600 };

function keeperHarness(timingOptions: SessionTimingOptions = TIMING) {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  const handle = backend.connect('keeper');
  const recorded = recordingStore(handle, clock);
  const observer = backend.connect('keeper');
  const events: KeeperEvent[] = [];
  const timing = resolveSessionTiming(timingOptions);
  const keeper = new SessionKeeper({
    store: recorded.store,
    info: testNodeInfo('n1'),
    timing,
    clock,
    emit: (event, payload) => events.push({ event, payload, at: clock.monotonic() }),
  });
  const sessions: LiveSession[] = [];
  keeper.onSession((s) => sessions.push(s));
  /** Advances in small steps so that every timer fires at its own instant. */
  const advance = async (ms: number, step = 10) => {
    for (let done = 0; done < ms; done += step) await clock.advance(Math.min(step, ms - done));
  };
  const liveIds = async () => (await observer.listSessions()).map((s) => s.id);
  const renewsOf = (id: string) => recorded.calls.filter((c) => c.method === 'renewSession' && c.args[0] === id);
  return { clock, backend, handle, observer, recorded, events, timing, keeper, sessions, advance, liveIds, renewsOf };
}

/** Monotonic time at which `signal` aborts (filled in when it does). */
function abortTime(signal: AbortSignal, clock: FakeClock): { at: number | undefined } {
  const result: { at: number | undefined } = { at: undefined };
  signal.addEventListener('abort', () => (result.at = clock.monotonic()), { once: true });
  return result;
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe('session keeper: renewal', () => {
  it('opens one session and renews it every renewEvery, keeping it alive in the store', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    expect(await h.liveIds()).toEqual([session.id]);
    expect(h.events.filter((e) => e.event === 'session:opened')).toHaveLength(1);

    const startedAt = h.clock.monotonic();
    await h.advance(10_000);
    const renews = h.renewsOf(session.id);
    expect(renews).toHaveLength(10);
    // On schedule: one every renewEvery, measured from the previous one.
    renews.forEach((call, i) => expect(call.at - startedAt).toBe((i + 1) * 1000));
    expect(h.keeper.current).toBe(session);
    expect(session.isLive()).toBe(true);
    expect(session.signal.aborted).toBe(false);
    // The local deadline is the send time of the last renewal + TTL − safety margin.
    expect(session.deadline).toBe(renews[renews.length - 1]!.at + 3000 - 600);
    const [record] = await h.observer.listSessions();
    expect(record?.expiresInMs).toBeGreaterThan(3000 - 1000 - 1);
    expect(h.recorded.count('openSession')).toBe(1);
    // Nothing went wrong: one `session:renewed` per renewal (its round trip is 0 on the fake clock), nothing else.
    const renewed = h.events.filter((e) => e.event === 'session:renewed');
    expect(renewed).toHaveLength(renews.length);
    expect(renewed.every((e) => (e.payload as { durationMs: number }).durationMs === 0)).toBe(true);
    expect(h.events.filter((e) => e.event !== 'session:opened' && e.event !== 'session:renewed')).toEqual([]);
  });

  it('sends one renewal per node whatever its number of tasks', async () => {
    const renewals: number[] = [];
    for (const taskCount of [1, 40]) {
      const sim = new Sim();
      const tasks = Array.from({ length: taskCount }, (_, i) => [`task-${i}`, { every: '1s' }] as [string, { every: string }]);
      const node = await sim.node('a', tasks, { ttl: 3000 });
      await sim.advance(10_000);
      const renews = node.calls.filter((c) => c.method === 'renewSession').length;
      renewals.push(renews);
      // And nothing else renews anything per task: no session is opened again.
      expect(node.calls.filter((c) => c.method === 'openSession')).toHaveLength(1);
      expect((await sim.owners()).size).toBe(taskCount);
      await sim.closeAll();
    }
    // ttl 3s → renewEvery 1s → 10 renewals in 10s, for 1 task and for 40.
    expect(renewals).toEqual([10, 10]);
  });

  it('survives a short stall that ends before its local deadline', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.clock.stall(1500); // renewal due at +1000 fires 500ms late, still before the +2400 deadline
    await h.advance(5000);
    expect(session.signal.aborted).toBe(false);
    expect(h.keeper.current).toBe(session);
    expect(h.sessions).toHaveLength(1);
  });
});

describe('session keeper: self-fencing', () => {
  it('aborts the session signal before the store expires a session it cannot renew, then reopens after heal', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.advance(1500); // one renewal done at +1000
    const aborted = abortTime(session.signal, h.clock);

    h.backend.sever(h.handle);
    const severedAt = h.clock.monotonic();
    const [record] = await h.observer.listSessions();
    const storeExpiry = severedAt + record!.expiresInMs;

    // Watch the store from outside until it expires the session.
    let storeGoneAt: number | undefined;
    while (storeGoneAt === undefined) {
      await h.clock.advance(10);
      if (!(await h.liveIds()).includes(session.id)) storeGoneAt = h.clock.monotonic();
      expect(h.clock.monotonic() - severedAt).toBeLessThan(5000);
    }

    expect(aborted.at).toBeDefined();
    // Invariant 4: local abort strictly before the store's expiry, by at least the safety margin.
    expect(aborted.at!).toBeLessThan(storeExpiry);
    expect(aborted.at!).toBeLessThanOrEqual(storeExpiry - h.timing.safetyMarginMs);
    expect(storeGoneAt).toBeGreaterThanOrEqual(storeExpiry);
    expect(session.signal.reason).toBeInstanceOf(SessionExpiredError);
    expect(() => session.assertLive()).toThrow(SessionExpiredError);
    expect(h.keeper.current).toBeUndefined();
    expect(h.events.some((e) => e.event === 'session:renew-failed')).toBe(true);
    const lost = h.events.filter((e) => e.event === 'session:lost');
    expect(lost).toHaveLength(1);
    expect(lost[0]!.at).toBe(aborted.at);
    // Retrying while severed is bounded (no storm of renewals as the deadline nears).
    expect(h.renewsOf(session.id).filter((c) => c.at >= severedAt).length).toBeLessThanOrEqual(10);

    // While severed, no session can be opened; after heal one is, with a new id.
    await h.advance(3000);
    expect(h.sessions).toHaveLength(1);
    h.backend.heal(h.handle);
    await h.advance(4000); // the reopen backoff (jittered) is capped at the TTL
    expect(h.sessions).toHaveLength(2);
    const next = h.sessions[1]!;
    expect(next.id).not.toBe(session.id);
    expect(h.keeper.current).toBe(next);
    expect(next.isLive()).toBe(true);
    expect(await h.liveIds()).toEqual([next.id]);
    // The new session is kept alive on schedule.
    await h.advance(5000);
    expect(h.keeper.current).toBe(next);
    expect(h.renewsOf(next.id).length).toBeGreaterThanOrEqual(4);
  });

  it('keeps the session when the store is unreachable for less than the deadline allows', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.advance(1000); // renewed at +1000: local deadline at +3400
    h.backend.sever(h.handle);
    await h.advance(1200);
    h.backend.heal(h.handle);
    await h.advance(5000);
    expect(session.signal.aborted).toBe(false);
    expect(h.keeper.current).toBe(session);
    expect(h.sessions).toHaveLength(1);
  });

  it('treats its session as lost after waking from a stall longer than the TTL, before sending anything', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.advance(500);
    const aborted = abortTime(session.signal, h.clock);
    const stallStart = h.clock.monotonic();
    await h.clock.stall(4000); // > ttl: the store expired the session meanwhile

    expect(session.signal.aborted).toBe(true);
    expect(aborted.at).toBe(stallStart + 4000); // at the first instant after waking
    expect(() => session.assertLive()).toThrow(SessionExpiredError);
    expect(session.isLive()).toBe(false);
    expect(h.events.some((e) => e.event === 'session:stalled')).toBe(true);
    expect(h.events.some((e) => e.event === 'session:lost')).toBe(true);
    // It did not try to renew the old session after waking: it knew it was past its deadline.
    expect(h.renewsOf(session.id).filter((c) => c.at > stallStart)).toEqual([]);

    await h.advance(1000);
    const next = h.keeper.current;
    expect(next).toBeDefined();
    expect(next!.id).not.toBe(session.id);
    expect(await h.liveIds()).toEqual([next!.id]);
  });

  it('loses a stalled session whose local deadline passed even if the store has not expired it yet', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.clock.stall(2700); // past the local deadline (+2400), before the store's expiry (+3000)
    expect(session.signal.aborted).toBe(true);
    await h.advance(100);
    expect(h.keeper.current?.id).not.toBe(session.id);
    // The old session was closed at once (best effort) rather than left to its TTL.
    expect(await h.liveIds()).not.toContain(session.id);
  });

  it('loses the session when the store answers that it expired, then opens a new one', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.advance(1500);
    // The store drops the session (an operator, a store failover): the next renewal answers false.
    await h.observer.closeSession(session.id);
    await h.advance(600);
    expect(session.signal.aborted).toBe(true);
    expect(session.signal.reason).toBeInstanceOf(SessionExpiredError);
    expect((session.signal.reason as Error).message).toMatch(/store reports the session expired/);
    const lost = h.events.filter((e) => e.event === 'session:lost');
    expect(lost).toHaveLength(1);
    await h.advance(500);
    expect(h.sessions).toHaveLength(2);
    expect(h.keeper.current?.id).toBe(h.sessions[1]!.id);
    expect(h.sessions[1]!.id).not.toBe(session.id);
  });
});

describe('session keeper: slow renewals', () => {
  /** A keeper whose store answers renewals `latency()` ms late (the store applies them on arrival). */
  function slowHarness(latency: () => number) {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const handle = backend.connect('keeper');
    const sent: number[] = [];
    const slow = new Proxy(handle, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'renewSession') {
          return async (id: string) => {
            sent.push(clock.monotonic());
            await sleep(clock, latency());
            return target.renewSession(id);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const keeper = new SessionKeeper({ store: slow, info: testNodeInfo('n1'), timing: resolveSessionTiming(TIMING), clock, emit: () => undefined });
    return { clock, backend, keeper, sent, observer: backend.connect('keeper') };
  }

  it('measures the local deadline from when the renewal was sent, not when it was answered', async () => {
    const h = slowHarness(() => 500);
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.clock.advance(1600); // renewal sent at +1000, answered at +1500
    expect(h.sent).toHaveLength(1);
    expect(session.deadline).toBe(h.sent[0]! + 3000 - 600);
    const [record] = await h.observer.listSessions();
    // The store's expiry (measured from when it applied the renewal) is later than the local deadline.
    expect(h.clock.monotonic() + record!.expiresInMs).toBeGreaterThan(session.deadline);
  });

  it('sends another renewal when one hangs, so a store that is back within the deadline keeps the session', async () => {
    // A leader election, as a 3-member etcd went through it: a renewal sent meanwhile hangs for the
    // client's call timeout (2 s) and then fails; one sent once the new leader is there is answered.
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const handle = backend.connect('keeper');
    const sent: number[] = [];
    let electionUntil = -Infinity;
    const store = new Proxy(handle, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'renewSession') {
          return async (id: string) => {
            sent.push(clock.monotonic());
            if (clock.monotonic() < electionUntil) {
              await sleep(clock, 2000);
              throw new StoreUnavailableError('renewSession failed: deadline exceeded (no leader)');
            }
            return target.renewSession(id);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const lost: unknown[] = [];
    const keeper = new SessionKeeper({
      store,
      info: testNodeInfo('n1'),
      timing: resolveSessionTiming(TIMING),
      clock,
      emit: (event, payload) => void (event === 'session:lost' && lost.push(payload)),
    });
    cleanup = async () => {
      const closing = keeper.close();
      await clock.advance(2000); // renewals in flight fail after their 2 s
      await closing;
    };
    const session = await keeper.start();
    await clock.advance(900);
    // The renewal due at +1000 falls into an election that ends at +2000; the local deadline is +2400.
    electionUntil = clock.monotonic() + 1100;
    for (let t = 0; t < 5000; t += 10) await clock.advance(10);
    // One renewal waiting out its timeout took the whole 1.4 s left: the session was lost at +2400.
    // Another one sent at half the time left (+1700) hangs too; the next (+2050) is answered.
    expect(lost).toEqual([]);
    expect(keeper.current).toBe(session);
    expect(sent.filter((at) => at < 1_000_000 + 2400).length).toBeLessThanOrEqual(4);
  });

  it('does not revive a session whose renewal is answered after the local deadline', async () => {
    let latency = 10;
    const h = slowHarness(() => latency);
    cleanup = async () => {
      // close() waits for renewals in flight: let the slow store answer them.
      let closed = false;
      const closing = h.keeper.close().then(() => (closed = true));
      for (let i = 0; i < 100 && !closed; i++) await h.clock.advance(100);
      await closing;
    };
    const session = await h.keeper.start();
    await h.clock.advance(1500);
    latency = 5000; // the next renewal (sent at +2010) is answered "true" at +7010, far too late
    const aborted = abortTime(session.signal, h.clock);
    await h.clock.advance(6000);
    expect(aborted.at).toBeDefined();
    expect(aborted.at!).toBeLessThanOrEqual(h.sent[0]! + 3000 - 600);
    expect(session.isLive()).toBe(false);
    expect(h.keeper.current?.id).not.toBe(session.id);
  });
});

describe('session keeper: start and close', () => {
  it('close() closes the session in the store, aborts its signal and leaves no timer behind', async () => {
    const h = keeperHarness();
    expect(h.clock.pendingTimers).toBe(0);
    const session = await h.keeper.start();
    await h.advance(2500);
    expect(h.clock.pendingTimers).toBeGreaterThan(0);
    await h.keeper.close();
    expect(await h.liveIds()).toEqual([]);
    expect(session.signal.aborted).toBe(true);
    expect(session.signal.reason).toBeInstanceOf(ClosedError);
    expect(h.keeper.current).toBeUndefined();
    expect(h.clock.pendingTimers).toBe(0);
    const callsAtClose = h.recorded.calls.length;
    await h.advance(10_000);
    expect(h.recorded.calls.length).toBe(callsAtClose);
    await h.keeper.close(); // twice is harmless
  });

  it('closes a lost session in the store as soon as the store answers again, asking with back-off meanwhile', async () => {
    const h = keeperHarness();
    cleanup = () => h.keeper.close();
    const session = await h.keeper.start();
    await h.advance(1000);
    // The node cannot reach the store, which keeps the session alive meanwhile: an etcd leader elected
    // after a failover renews every lease it takes over, so the lost session outlives its local deadline.
    const heal = failCalls(h.handle, ['renewSession', 'closeSession', 'openSession']);
    const extend = async () => void (await h.observer.renewSession(session.id));
    for (let i = 0; i < 5 && !session.signal.aborted; i++) {
      await extend();
      await h.advance(1000);
    }
    expect(session.signal.aborted).toBe(true);
    const lostAt = h.clock.monotonic();
    for (let i = 0; i < 5; i++) {
      await extend();
      await h.advance(1000);
    }
    expect(await h.liveIds()).toContain(session.id);
    // 100 ms doubling up to renewEvery (1 s), each pause at least half its ceiling: at most 14 in 5 s.
    const closes = h.recorded.calls.filter((c) => c.method === 'closeSession' && c.at >= lostAt - 1000).length;
    expect(closes).toBeGreaterThanOrEqual(5);
    expect(closes).toBeLessThanOrEqual(14);
    const reports = h.events.filter((e) => e.event === 'session:close-failed').map((e) => (e.payload as { attempt: number }).attempt);
    expect(reports[0]).toBe(1);
    expect(reports.every((a) => a === 1 || a % 10 === 0)).toBe(true);
    // The store answers again: the old session (and every key it holds) is gone within one pause,
    // although the store would have kept it for its TTL (3 s) after the last extension.
    heal();
    const healedAt = h.clock.monotonic();
    while ((await h.liveIds()).includes(session.id)) {
      await h.clock.advance(10);
      expect(h.clock.monotonic() - healedAt).toBeLessThanOrEqual(h.timing.renewEveryMs);
    }
    const after = h.recorded.count('closeSession');
    await h.advance(5000);
    expect(h.recorded.count('closeSession')).toBe(after); // confirmed once: no more attempts
  });

  it('close() while reopening against an unreachable store stops the retries and leaves no timer', async () => {
    const h = keeperHarness();
    const session = await h.keeper.start();
    h.backend.sever(h.handle);
    await h.advance(4000); // lost at +2400, retrying to open since
    expect(session.signal.aborted).toBe(true);
    expect(h.recorded.count('openSession')).toBeGreaterThan(1);
    await h.keeper.close();
    expect(h.clock.pendingTimers).toBe(0);
    const opens = h.recorded.count('openSession');
    h.backend.heal(h.handle);
    await h.advance(10_000);
    expect(h.recorded.count('openSession')).toBe(opens);
    expect(await h.liveIds()).toEqual([]);
  });

  it('start() fails when the store is unreachable and leaves nothing running', async () => {
    const h = keeperHarness();
    h.backend.sever(h.handle);
    await expect(h.keeper.start()).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(h.clock.pendingTimers).toBe(0);
    await expect(h.keeper.start()).rejects.toBeInstanceOf(ClosedError);
    h.backend.heal(h.handle);
    await h.advance(5000);
    expect(await h.liveIds()).toEqual([]);
  });
});
