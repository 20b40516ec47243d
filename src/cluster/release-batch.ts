/**
 * Coalesces the releases one store handle is asked for in the same turn of the event loop into one
 * {@link Store.releaseMany}: a node handing many tasks over at once (rebalancing after a join) frees
 * them in a few round trips, not one per task. A lone release stays a plain `release`.
 */
import type { Store } from '../stores/contract.js';

interface Pending {
  readonly key: string;
  readonly token: bigint;
  readonly resolve: (released: boolean) => void;
  readonly reject: (error: unknown) => void;
}

const queued = new WeakMap<Store, Pending[]>();

/** `store.release(key, token)`, sent with the other releases of this turn; same answer and errors. */
export function releaseInBatch(store: Store, key: string, token: bigint): Promise<boolean> {
  let batch = queued.get(store);
  if (!batch) {
    const created: Pending[] = [];
    batch = created;
    queued.set(store, created);
    // The next turn: the releases of leases ended together reach here from separate continuations.
    setImmediate(() => {
      queued.delete(store);
      flush(store, created);
    });
  }
  return new Promise((resolve, reject) => (batch as Pending[]).push({ key, token, resolve, reject }));
}

function flush(store: Store, batch: readonly Pending[]): void {
  // releaseMany takes distinct keys: a key released twice in one turn (two tokens) waits for the next.
  const seen = new Set<string>();
  const now: Pending[] = [];
  for (const p of batch) {
    if (seen.has(p.key)) releaseInBatch(store, p.key, p.token).then(p.resolve, p.reject);
    else {
      seen.add(p.key);
      now.push(p);
    }
  }
  const [only] = now;
  if (now.length === 1 && only) {
    store.release(only.key, only.token).then(only.resolve, only.reject);
    return;
  }
  store.releaseMany(now.map(({ key, token }) => ({ key, token }))).then(
    (results) => now.forEach((p, i) => p.resolve(results[i] === true)),
    (error: unknown) => now.forEach((p) => p.reject(error)),
  );
}
