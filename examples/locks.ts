/**
 * Locks, a semaphore and shared state. Run it in two or three terminals at once: the lock's section runs
 * in one process at a time (each gets a greater fencing token), at most two uploads run cluster-wide, and
 * the run counter goes up by exactly one per process thanks to compare-and-set.
 *
 *   npx tsx examples/locks.ts                      # SQLite file ./baton-example.db
 *   npx tsx examples/locks.ts redis://127.0.0.1:6379/0
 */
import { createCluster, LockHeldError } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-locks' });
await cluster.start();
const me = cluster.node.id;
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

try {
  // 1. A lock, released at the end of the block by `await using` (also if the block throws).
  {
    await using lock = await cluster.lock('nightly-report', { wait: '30s' });
    console.log(`${me}: holds "nightly-report" with token ${lock.token}`);
    // Work that honours lock.signal: it aborts if this node loses the lock (session lost, a stall).
    await sleep(1500, lock.signal);
    // A fenced write: refused (NotOwnerError) if a newer holder exists by now.
    await cluster.sharedState<{ by: string; token: string }>('last-report').set({ by: me, token: String(lock.token) }, { guard: lock.guard });
  }

  // 2. Not waiting: LockHeldError names the holder's node, host and pid.
  const other = await cluster.lock('maintenance', { wait: false }).catch((error: unknown) => {
    if (error instanceof LockHeldError) console.log(`${me}: ${error.message}`);
    else throw error;
  });
  if (other) {
    await sleep(500);
    await other.release();
  }

  // 3. A semaphore: at most 2 uploads at once across every process running this file.
  const uploads = cluster.semaphore('uploads', { limit: 2 });
  await Promise.all(
    [1, 2, 3].map(async (n) => {
      await using permit = await uploads.acquire();
      console.log(`${me}: upload ${n} runs in slot ${permit.slot}`);
      await sleep(400, permit.signal);
    }),
  );

  // 4. Shared state: a cluster-wide counter updated with compare-and-set (retry when another node won).
  const runs = cluster.sharedState<number>('runs');
  for (;;) {
    const current = await runs.get();
    if (await runs.cas(current?.version ?? 'absent', (current?.value ?? 0) + 1)) break;
  }
  console.log(`${me}: runs so far: ${(await runs.get())?.value}`);
} finally {
  await cluster.close();
}
