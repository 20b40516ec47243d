/**
 * Lock throughput with the Store contract directly: one session, then acquire+release pairs
 * (`tryAcquire` then `release` with the token) for `windowMs`, sequentially (one at a time) and 10-way
 * concurrently (10 loops on distinct keys, sharing the one store handle, as the peers share one client).
 * One op = one acquire + one release.
 */
import { hostname } from 'node:os';
import { currentProcessIdentity } from '../src/core/process-identity.js';
import { BATON_VERSION, type NodeInfo } from '../src/core/node-info.js';
import { openStore } from '../src/stores/open-store.js';
import type { Store } from '../src/stores/contract.js';
import { round } from './stats.js';

export interface OpsPerSec {
  seq: number;
  c10: number;
}

/** Runs `op` in `concurrency` loops for `windowMs` (and at most `maxOps` ops); returns ops/s. */
export async function throughput(concurrency: number, windowMs: number, op: (worker: number, i: number) => Promise<void>, maxOps = 1_000_000): Promise<number> {
  const end = Date.now() + windowMs;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; Date.now() < end && done < maxOps; i++) {
        await op(worker, i);
        done += 1;
      }
    }),
  );
  return round(done / ((performance.now() - t0) / 1000), 0);
}

export function benchNodeInfo(id: string): NodeInfo {
  return { id, host: hostname(), pid: process.pid, version: BATON_VERSION, labels: {}, startedAt: Date.now(), process: currentProcessIdentity(), tasks: {} };
}

export async function storeLockOps(url: string, cluster: string, windowMs: number): Promise<OpsPerSec> {
  const store: Store = await openStore(url, { cluster });
  try {
    const { id } = await store.openSession(benchNodeInfo('lock-bench'), 30_000);
    const op = async (worker: number) => {
      const key = `lock/bench-${worker}`;
      const r = await store.tryAcquire(key, id);
      if (!r.acquired) throw new Error(`bench: ${key} unexpectedly held`);
      if (!(await store.release(key, r.token))) throw new Error(`bench: release of ${key} refused`);
    };
    for (let i = 0; i < 20; i++) await op(0); // warm-up (connections, prepared statements, script cache)
    const seq = await throughput(1, windowMs, op);
    const c10 = await throughput(10, windowMs, op);
    await store.closeSession(id);
    return { seq, c10 };
  } finally {
    await store.close();
  }
}

/**
 * The cluster-level lock API (`cluster.lock(name, { wait: false })` + `release()`), when this version of
 * src/cluster.ts has it (it was being written alongside the bench). Accessed loosely so the bench still
 * type-checks and runs without it; returns null when it is missing.
 */
export async function clusterLockOps(url: string, cluster: string, windowMs: number): Promise<OpsPerSec | null> {
  const { createCluster } = await import('../src/node/node.js');
  const { silentLogger } = await import('../src/core/logger.js');
  const c = await createCluster({ store: url, name: cluster, node: { id: 'lock-bench' }, logger: silentLogger });
  const api = c as unknown as { lock?: (name: string, options: { wait: boolean }) => Promise<{ release(): Promise<void> }> };
  if (typeof api.lock !== 'function') {
    await c.close();
    return null;
  }
  const lock = api.lock.bind(c);
  try {
    await c.start();
    const op = async (worker: number) => {
      const handle = await lock(`bench-${worker}`, { wait: false });
      await handle.release();
    };
    for (let i = 0; i < 20; i++) await op(0);
    return { seq: await throughput(1, windowMs, op), c10: await throughput(10, windowMs, op) };
  } finally {
    await c.close();
  }
}
