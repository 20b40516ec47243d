/**
 * Store load per node: 3 nodes (in this process, each with its own store handle) declare N tasks that
 * do not fire during the measurement (`every: 24h`), so what is counted is the cost of coordination
 * alone: session renewals, placement scans, and whatever else the cluster sends while owning N tasks.
 * Each node's Store is wrapped in a counting proxy (createCluster accepts an opened Store): every call is
 * a round trip, calls that change state are writes. The window starts once every task is owned and no
 * ownership changed for 3 s. Traffic a store handle makes on its own (SQLite's change poll every 50 ms,
 * the server stores' crash checks/reapers, etcd keep-alive pings) does not pass through the Store
 * interface and is not counted; it is per handle, not per task (see docs/stores/*). The window opens
 * only after TTL + 2 s, once every node owns its share (⌊T/N⌋ or ⌈T/N⌉), and ownership has been still for 3 s.
 *
 * Our calls are not the store's work: one `listHolders` of 1,000 owned tasks is one call but reads 1,000
 * rows. Where the server counts its own work, the same window also reads that counter ({@link storeWorkCounter}).
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { createCluster, type Cluster } from '../src/node/node.js';
import { silentLogger } from '../src/core/logger.js';
import { openStore } from '../src/stores/open-store.js';
import type { Store } from '../src/stores/contract.js';
import { round } from './stats.js';
import { progress, sleep, waitUntil } from './util.js';

const WRITES: ReadonlySet<string> = new Set(['openSession', 'renewSession', 'closeSession', 'tryAcquire', 'tryAcquireMany', 'release', 'releaseMany', 'put', 'delete', 'deleteBefore']);
const NOT_CALLS: ReadonlySet<string> = new Set(['watch', 'close']);
/** Ownership must have been still this long before the window opens. */
const STILL_MS = 3000;

export interface CallCounts {
  writes: number;
  roundTrips: number;
  byMethod: Record<string, number>;
}

/** A Store that counts the calls made through it. */
export function countingStore(inner: Store): { store: Store; counts: CallCounts; reset(): void } {
  const counts: CallCounts = { writes: 0, roundTrips: 0, byMethod: {} };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string' || NOT_CALLS.has(prop)) {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return (...args: unknown[]) => {
        counts.roundTrips += 1;
        if (WRITES.has(prop)) counts.writes += 1;
        counts.byMethod[prop] = (counts.byMethod[prop] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store,
    counts,
    reset() {
      counts.writes = 0;
      counts.roundTrips = 0;
      counts.byMethod = {};
    },
  };
}

export interface LoadPoint {
  writesPerSec: number;
  roundTripsPerSec: number;
  /** Per-method calls per second per node (averaged over the nodes). */
  byMethod: Record<string, number>;
  settleMs: number;
  /** The server's own work per second per node, where it counts it ({@link storeWorkCounter}). */
  storeWork?: { unit: string; perSec: number };
}

/** A cumulative counter of the work a store's server does, read at the window's edges. */
export interface StoreWorkCounter {
  readonly unit: string;
  read(): Promise<number>;
  close(): Promise<void>;
}

/**
 * What the server itself counts, where it does:
 * - PostgreSQL: rows read from the store's tables (`pg_stat_user_tables`: sequential + index fetches) in
 *   the URL's schema, which the bench uses alone. The server publishes a backend's counts when it goes
 *   idle, within a second or, at worst, 10 s: over a 20 s window of steady traffic the rate holds.
 * - Redis: commands run, those inside our Lua scripts included (`INFO commandstats`, without the INFO
 *   calls themselves). Server-wide: other clients of the same server are counted too.
 * Other stores: none (undefined).
 */
export async function storeWorkCounter(url: string): Promise<StoreWorkCounter | undefined> {
  const scheme = url.slice(0, url.indexOf(':'));
  if (scheme === 'postgres' || scheme === 'postgresql') {
    const schema = new URL(url).searchParams.get('schema') ?? 'baton';
    const client = new pg.Client({ connectionString: url.replace(/\?.*$/, '') });
    await client.connect();
    return {
      unit: 'rows read',
      read: async () => {
        const { rows } = await client.query<{ n: string }>(
          `SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0) AS n FROM pg_stat_user_tables WHERE schemaname = $1`,
          [schema],
        );
        return Number(rows[0]?.n ?? 0);
      },
      close: () => client.end(),
    };
  }
  if (scheme === 'redis' || scheme === 'rediss') {
    const redis = new Redis(url.replace(/\?.*$/, ''));
    return {
      unit: 'commands',
      read: async () => {
        const stats = await redis.info('commandstats');
        let calls = 0;
        for (const [, command, n] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (command !== 'info') calls += Number(n);
        return calls;
      },
      close: async () => void redis.disconnect(),
    };
  }
  return undefined;
}

export async function measureLoad(url: string, cluster: string, tasks: number, windowMs: number, nodes = 3): Promise<LoadPoint> {
  const handles: { cluster: Cluster; store: Store; counter: ReturnType<typeof countingStore> }[] = [];
  const work = await storeWorkCounter(url);
  let owned = 0;
  const ownedBy = Array.from({ length: nodes }, () => 0);
  let lastChange = Date.now();
  try {
    for (let i = 0; i < nodes; i++) {
      const raw = await openStore(url, { cluster });
      const counter = countingStore(raw);
      const c = await createCluster({ store: counter.store, name: cluster, node: { id: `load-${i}` }, logger: silentLogger });
      handles.push({ cluster: c, store: raw, counter });
      for (let t = 0; t < tasks; t++) c.task(`t${t}`, { every: '24h' }, () => undefined);
      const bump = (d: number) => () => {
        owned += d;
        ownedBy[i] = (ownedBy[i] ?? 0) + d;
        lastChange = Date.now();
      };
      c.on('owner:acquired', bump(1));
      c.on('owner:released', bump(-1));
      c.on('owner:lost', bump(-1));
    }
    const started = Date.now();
    await Promise.all(handles.map((h) => h.cluster.start()));
    await waitUntil(`${tasks} tasks owned`, () => owned === tasks && Date.now() - lastChange >= 1000, 60_000, 50);
    // Rebalancing (hand-over to a node alive for one TTL, 5 s) must be over before the window opens.
    const rebalanced = started + 5000 + 2000 - Date.now();
    if (rebalanced > 0) await sleep(rebalanced);
    // Hand-overs of a large start-up go on for seconds on stores served by one connection per handle
    // (PostgreSQL: ~10 s for 1,000 tasks): the window opens once nothing was acquired or released for 3 s.
    // And only once the spread is final (every node ⌊T/N⌋ or ⌈T/N⌉): a window opened between the start-up
    // acquisitions and the rebalancing (which begins when the nodes are one TTL old) would count hand-overs.
    const balanced = () => Math.max(...ownedBy) - Math.min(...ownedBy) <= 1;
    await waitUntil(`${tasks} tasks owned, spread and still`, () => owned === tasks && balanced() && Date.now() - lastChange >= STILL_MS, 90_000, 50);
    const settleMs = Date.now() - started;
    for (const h of handles) h.counter.reset();
    const workBefore = await work?.read();
    const t0 = Date.now();
    await sleep(windowMs);
    const seconds = (Date.now() - t0) / 1000;
    const workDone = work && workBefore !== undefined ? (await work.read()) - workBefore : undefined;
    const per = (f: (c: CallCounts) => number) => round(handles.reduce((n, h) => n + f(h.counter.counts), 0) / nodes / seconds, 2);
    const methods = new Set(handles.flatMap((h) => Object.keys(h.counter.counts.byMethod)));
    const byMethod: Record<string, number> = {};
    for (const m of methods) byMethod[m] = per((c) => c.byMethod[m] ?? 0);
    const storeWork = work && workDone !== undefined ? { unit: work.unit, perSec: round(workDone / nodes / seconds, 1) } : undefined;
    const point = { writesPerSec: per((c) => c.writes), roundTripsPerSec: per((c) => c.roundTrips), byMethod, settleMs, ...(storeWork ? { storeWork } : {}) };
    const shownWork = storeWork ? `, ${storeWork.perSec} ${storeWork.unit}/s` : '';
    progress(`load ${url.split(':')[0]} t${tasks}: ${point.writesPerSec} writes/s, ${point.roundTripsPerSec} round trips/s${shownWork} per node (settled in ${settleMs}ms)`);
    return point;
  } finally {
    await Promise.allSettled(handles.map((h) => h.cluster.close()));
    await Promise.allSettled(handles.map((h) => h.store.close()));
    await work?.close();
  }
}
