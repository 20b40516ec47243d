import { describe, expect, it } from 'vitest';
import { releaseInBatch } from '../../src/cluster/release-batch.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import type { Store } from '../../src/stores/contract.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { nodeInfo } from '../conformance/store-conformance.js';

/** A memory store handle whose calls are counted by method, and whose releaseMany can be made to fail. */
function counted(fail = false): { store: Store; calls: Record<string, number> } {
  const inner = new MemoryBackend({ clock: new FakeClock() }).connect('c');
  const calls: Record<string, number> = {};
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => {
        calls[prop] = (calls[prop] ?? 0) + 1;
        if (fail && prop === 'releaseMany') return Promise.reject(new StoreUnavailableError('down'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

describe('releaseInBatch', () => {
  it('frees the releases of one turn in one releaseMany, answering each as release would', async () => {
    const { store, calls } = counted();
    const s = await store.openSession(nodeInfo('n'), 10_000);
    const taken = await store.tryAcquireMany(['a', 'b', 'c'], s.id);
    const tokens = taken.map((t) => (t.acquired ? t.token : 0n));
    const answers = await Promise.all([
      releaseInBatch(store, 'a', tokens[0] as bigint),
      releaseInBatch(store, 'b', (tokens[1] as bigint) + 100n), // not its token: stays held
      releaseInBatch(store, 'c', tokens[2] as bigint),
    ]);
    expect(answers).toEqual([true, false, true]);
    expect([calls.releaseMany, calls.release]).toEqual([1, undefined]);
    expect((await store.listHolders('')).map((h) => h.key)).toEqual(['b']);
  });

  it('sends a lone release as release, and a key given twice in one turn in the next', async () => {
    const { store, calls } = counted();
    const s = await store.openSession(nodeInfo('n'), 10_000);
    const [a] = await store.tryAcquireMany(['a'], s.id);
    const token = a?.acquired ? a.token : 0n;
    expect(await releaseInBatch(store, 'a', token)).toBe(true);
    expect([calls.releaseMany, calls.release]).toEqual([undefined, 1]);
    const [again] = await store.tryAcquireMany(['a'], s.id);
    const second = again?.acquired ? again.token : 0n;
    expect(await Promise.all([releaseInBatch(store, 'a', token), releaseInBatch(store, 'a', second)])).toEqual([false, true]);
  });

  it('rejects every release of a batch the store failed', async () => {
    const { store } = counted(true);
    const results = await Promise.allSettled([releaseInBatch(store, 'a', 1n), releaseInBatch(store, 'b', 2n)]);
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof StoreUnavailableError)).toEqual([true, true]);
  });
});
