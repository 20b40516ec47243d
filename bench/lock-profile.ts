/**
 * Where the time of one lock acquire+release goes: counts the driver calls (store round trips) per
 * operation, by statement (pg) or command (ioredis), for the Store contract and for `cluster.lock()`.
 * `npx tsx bench/lock-profile.ts postgres|redis [ops]`; for a CPU profile:
 * `node --import tsx --cpu-prof bench/lock-profile.ts redis`. Other stores' drivers are not counted.
 */
import { createRequire } from 'node:module';
import { benchNodeInfo } from './locks.js';
import { openStore } from '../src/stores/open-store.js';
import { createCluster } from '../src/node/node.js';
import { silentLogger } from '../src/core/logger.js';
import { storeSpec, type StoreName } from './stores.js';

const require = createRequire(import.meta.url);
const counts = new Map<string, number>();
const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);

function instrument(): void {
  const pg = require('pg') as { Client: { prototype: { query: (...a: unknown[]) => unknown } } };
  const q = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string; name?: string })?.name ?? (first as { text?: string })?.text ?? '?');
    count(`pg: ${text.replace(/\s+/g, ' ').trim().slice(0, 70)}`);
    return q.apply(this, args);
  };
  const { Redis } = require('ioredis') as { Redis: { prototype: { sendCommand: (...a: unknown[]) => unknown } } };
  const send = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: unknown, ...args: unknown[]) {
    const command = args[0] as { name: string; args: unknown[] };
    count(`redis: ${command.name}${command.name === 'evalsha' || command.name === 'eval' ? ` ${String(command.args[0]).slice(0, 8)}` : ''}`);
    return send.apply(this, args);
  };
}

type Op = (worker: number) => Promise<void>;

/** `ops` operations in `concurrency` loops after a warm-up; `onStart` runs when measuring begins. */
async function measure(op: Op, ops: number, concurrency: number, onStart: () => void): Promise<{ ops: number; ms: number }> {
  for (let i = 0; i < 20; i++) await op(0);
  onStart();
  let left = ops;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    while (left-- > 0) await op(w);
  }));
  return { ops, ms: performance.now() - t0 };
}

async function storeLockOpsCounted(url: string, cluster: string, ops: number, concurrency: number, onStart: () => void) {
  const store = await openStore(url, { cluster });
  try {
    const { id } = await store.openSession(benchNodeInfo('lock-profile'), 30_000);
    const r = await measure(async (w) => {
      const t = await store.tryAcquire(`lock/p-${w}`, id);
      if (!t.acquired || !(await store.release(`lock/p-${w}`, t.token))) throw new Error('profile: lock refused');
    }, ops, concurrency, onStart);
    await store.closeSession(id);
    return r;
  } finally {
    await store.close();
  }
}

async function clusterLockOpsCounted(url: string, cluster: string, ops: number, concurrency: number, onStart: () => void) {
  const c = await createCluster({ store: url, name: cluster, node: { id: 'lock-profile' }, logger: silentLogger });
  try {
    await c.start();
    return await measure(async (w) => {
      const h = await c.lock(`p-${w}`, { wait: false });
      await h.release();
    }, ops, concurrency, onStart);
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const store = (process.argv[2] ?? 'postgres') as StoreName;
  const ops = Number(process.argv[3] ?? 2000);
  instrument();
  const url = storeSpec(store).url;
  const report = (label: string, n: number, ms: number) => {
    process.stdout.write(`${label}: ${n} ops in ${ms.toFixed(0)} ms = ${Math.round(n / (ms / 1000))} ops/s\n`);
    const rows = [...counts].sort((a, b) => b[1] - a[1]);
    for (const [what, c] of rows) process.stdout.write(`  ${(c / n).toFixed(2).padStart(7)}/op  ${what}\n`);
    counts.clear();
  };
  const run = `${Date.now().toString(36)}`;
  for (const [label, fn] of [
    ['store contract', storeLockOpsCounted],
    ['cluster.lock', clusterLockOpsCounted],
  ] as const) {
    for (const concurrency of [1, 10]) {
      const r = await fn(url, `prof-${run}-${label.replace(/\W/g, '')}-${concurrency}`, ops, concurrency, () => counts.clear());
      report(`${store} ${label} c${concurrency}`, r.ops, r.ms);
    }
  }
}

await main();
