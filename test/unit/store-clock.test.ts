/** StoreClock: the node's estimate of the store's wall time, from one `Store.time()` call per sample. */
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { STORE_TIME_SAMPLE_EVERY_MS, StoreClock } from '../../src/cluster/store-clock.js';
import type { Store } from '../../src/stores/contract.js';

/** A node clock and a store whose time() answers `offsetMs` ahead of it, each call taking `roundTripMs`. */
function fixture() {
  let mono = 0;
  const wall0 = 1_767_225_600_000;
  const node: Clock = { now: () => wall0 + mono, monotonic: () => mono, setTimer: () => () => undefined };
  const next: { offsetMs: number; roundTripMs: number }[] = [];
  const store = {
    time: async () => {
      const answer = next.shift() ?? { offsetMs: 0, roundTripMs: 0 };
      // The store reads its clock half-way through the round trip.
      mono += answer.roundTripMs / 2;
      const storeNow = wall0 + mono + answer.offsetMs;
      mono += answer.roundTripMs / 2;
      return storeNow;
    },
  } as unknown as Store;
  return { clock: new StoreClock(node, store), node, answer: (offsetMs: number, roundTripMs = 0) => next.push({ offsetMs, roundTripMs }), wait: (ms: number) => (mono += ms) };
}

describe('StoreClock', () => {
  it('reads the store’s time through the node’s clock plus the measured offset', async () => {
    const f = fixture();
    f.answer(30_000, 40);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(30_000);
    expect(f.clock.now()).toBe(f.node.now() + 30_000);
    expect(f.clock.monotonic()).toBe(f.node.monotonic());
  });

  it('keeps its offset through jitter of a few ms, and follows a real change', async () => {
    const f = fixture();
    f.answer(-30_000, 2);
    await f.clock.sample();
    f.answer(-29_995, 2);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(-30_000);
    f.answer(-25_000, 2); // the node's clock was stepped by 5 s
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(-25_000);
  });

  it('ignores a later sample whose round trip was too long to say anything (the first is always taken)', async () => {
    const f = fixture();
    f.answer(5000, 3000);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000);
    f.answer(0, 3000);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000);
  });

  it('is due for a sample at first and again after STORE_TIME_SAMPLE_EVERY_MS', async () => {
    const f = fixture();
    expect(f.clock.sampleDue).toBe(true);
    await f.clock.sample();
    expect(f.clock.sampleDue).toBe(false);
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    expect(f.clock.sampleDue).toBe(true);
  });
});
