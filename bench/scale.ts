/**
 * Scale (issue 20): N nodes declare the same T tasks `every: '24h'` (none fires, so what is measured is
 * coordination alone) and start together (a cold start). N − 1 nodes run in this process; the last one,
 * the victim, is a child process (bench/node-process.ts) so that it can be SIGKILLed.
 *
 * In-process nodes share store handles, one per K = ⌈N / 10⌉ nodes: a PostgreSQL handle uses up to 3
 * connections and the server allows 100, so 100 nodes with a handle each would not fit. Sharing a handle
 * shares its connections (and its change feed): the figures are those of N sessions on ⌈(N − 1) / K⌉ + 1
 * handles, not of N processes. When (N − 1) × T exceeds {@link MAX_IN_PROCESS_RUNNERS}, the N − 1 nodes
 * run instead in ⌈(N − 1) × T / limit⌉ host processes (bench/node-process.ts `nodes`), K per handle
 * there too, and `hostProcesses` says how many: one process cannot carry a million task runners.
 *
 * Per point:
 * - `ownedMs`: from the start until every task has a live holder; `settleMs`: until, in addition, every
 *   node (the victim too) holds between min(⌊T/N⌋, ⌈0.85·T/N⌉) and max(⌈T/N⌉, ⌊1.15·T/N⌋) tasks — ±15 %
 *   of T/N, widened to ⌊T/N⌋…⌈T/N⌉ where ±15 % holds no integer split (100 tasks on 30 nodes). Both are
 *   read by one extra observer handle (no session) that lists sessions and task holders every 500 ms,
 *   stamped when the listing returned; the observer stops before the idle window.
 * - an idle window (no observer), once the declarations are written and no owner changed for 2 s (the
 *   rebalancing past ±15 % is over): the store's reads and writes per second as its server counts them
 *   ({@link serverCounters}: units differ by store, and some counters are server-wide), our own Store calls
 *   of the in-process nodes, and the CPU of this process (the N − 1 in-process nodes) and of the victim.
 * - `failoverMs`: SIGKILL to the victim, then until every task is held by a live session other than the
 *   victim's (the observer lists every 50 ms).
 * A point that does not settle within `capMs` is recorded with `settleMs: null` and a reason; its window is
 * still measured (the load of a cluster that does not settle is part of the answer), its failover only if
 * every task was owned.
 */
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createCluster, openStore, type Cluster, type Logger, type Store } from '../src/index.js';
import { ChildGroup, type Child } from './children.js';
import { countingStore } from './load.js';
import type { StoreName } from './stores.js';
import { round } from './stats.js';
import { errorText, progress, sleep } from './util.js';

export interface ScalePoint {
  nodes: number;
  tasks: number;
  /** Store handles: the in-process nodes' shared ones and the victim's. */
  handles: number;
  ownedMs: number | null;
  settleMs: number | null;
  /** Idle window, per second, in `unit.reads` / `unit.writes`. */
  readsPerSec: number | null;
  writesPerSec: number | null;
  unit: { reads: string; writes: string };
  /** Every counter the server gave for the window, per second (see {@link serverCounters}). */
  server: Record<string, number>;
  /** Store calls of the N − 1 in-process nodes through the Store interface, per second, all nodes together. */
  callsPerSec: { reads: number; writes: number } | null;
  /** CPU of the N − 1 nodes during the window (this process and the host processes), in cores. */
  cpu: number | null;
  /** Child processes the N − 1 nodes ran in when one process could not carry them (none: this process). */
  hostProcesses?: number;
  /** CPU of the victim's process during the window, in cores (Linux /proc). */
  victimCpu: number | null;
  windowS: number | null;
  /** Tasks the victim held when it was killed. */
  victimShare: number | null;
  /** From the start until every task's declaration (`decl/`) was written: a one-time cost of a new task list. */
  declaredMs?: number;
  /** From the start until no owner changed for {@link STILL_LOOKS} looks {@link STILL_POLL_MS} apart: the idle window opens then. */
  stillMs?: number;
  failoverMs: number | null;
  /** Held tasks per node when settled (or at the cap): min and max. */
  spread: { min: number; max: number } | null;
  /** Observer listings that failed (a store too busy to answer within its query timeout), and the longest that answered. */
  observer?: { errors: number; slowestMs: number };
  reason?: string;
}

export interface ScaleOptions {
  readonly windowMs: number;
  /** Longest wait for the settle, and for the failover. */
  readonly capMs: number;
  readonly failoverCapMs: number;
}

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };
const SETTLE_POLL_MS = 500;
const FAILOVER_POLL_MS = 50;
/** Owners unchanged over this many consecutive looks this far apart: the cluster is still. */
const STILL_LOOKS = 2;
const STILL_POLL_MS = 1000;
const TASK_PREFIX = 's';
const VICTIM = 'scale-victim';
/** In-process nodes × tasks above which the nodes run in host processes of at most this many runners (see measureScale). */
const MAX_IN_PROCESS_RUNNERS = 300_000;

/** Cumulative counters of a store's server; `reads` and `writes` are the headline pair. */
interface Counters {
  readonly unit: { reads: string; writes: string };
  read(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

interface OwnCalls {
  reads: number;
  writes: number;
}

const num = (text: string, re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);

/**
 * What the server counts, read at the window's edges:
 * - PostgreSQL: rows read (`seq_tup_read + idx_tup_fetch`) and rows written (`n_tup_ins + n_tup_upd +
 *   n_tup_del`) of the bench's schema in `pg_stat_user_tables`; `commits`: `xact_commit` of the database
 *   (server-side, so other clients of the database count too). Backends publish their counts when idle,
 *   within 1 s (at worst 10 s): over a 20 s window of steady traffic the rate holds.
 * - MySQL/MariaDB: `Handler_read_*` (row reads) and `Handler_write/update/delete`, server-wide.
 * - Redis: key lookups (`keyspace_hits + keyspace_misses`) and calls of commands flagged `write`
 *   (`INFO commandstats`, commands inside our Lua scripts included); `commands`: every call but INFO and
 *   COMMAND. Server-wide.
 * - etcd: `etcd_mvcc_range_total` (range requests, not keys) and `etcd_mvcc_put_total +
 *   etcd_mvcc_delete_total`; `txns`: `etcd_mvcc_txn_total`. Server-wide.
 * - ZooKeeper: the server counts packets only (`srvr`, the 4lw command this server allows): reads and
 *   writes are our Store calls (round trips), `packetsReceived`/`packetsSent` server-wide.
 * - SQLite: no server: reads and writes are our Store calls.
 * Our calls are those of the in-process nodes only (the victim's handle is not wrapped).
 */
export async function serverCounters(name: StoreName, url: string, own: () => OwnCalls): Promise<Counters> {
  const calls = { reads: 'Store read calls (in-process nodes)', writes: 'Store write calls (in-process nodes)' };
  const base = url.replace(/\?.*$/, '');
  switch (name) {
    case 'postgres': {
      const schema = new URL(url).searchParams.get('schema') ?? 'baton';
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      return {
        unit: { reads: 'rows read', writes: 'rows written' },
        read: async () => {
          const t = await client.query<{ reads: string; writes: string }>(
            `SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0) AS reads,
                    coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) AS writes
               FROM pg_stat_user_tables WHERE schemaname = $1`,
            [schema],
          );
          const d = await client.query<{ commits: string }>('SELECT xact_commit AS commits FROM pg_stat_database WHERE datname = current_database()');
          return { reads: Number(t.rows[0]?.reads ?? 0), writes: Number(t.rows[0]?.writes ?? 0), commits: Number(d.rows[0]?.commits ?? 0) };
        },
        close: () => client.end(),
      };
    }
    case 'mysql': {
      const mysql = await import('mysql2/promise');
      const conn = await mysql.createConnection(base);
      return {
        unit: { reads: 'handler row reads (server-wide)', writes: 'handler row writes (server-wide)' },
        read: async () => {
          const [rows] = await conn.query("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Handler\\_%' OR Variable_name IN ('Com_commit', 'Questions')");
          const v = Object.fromEntries((rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]));
          const sum = (names: string[]) => names.reduce((n, k) => n + (v[k] ?? 0), 0);
          return {
            reads: sum(['Handler_read_first', 'Handler_read_key', 'Handler_read_last', 'Handler_read_next', 'Handler_read_prev', 'Handler_read_rnd', 'Handler_read_rnd_next']),
            writes: sum(['Handler_write', 'Handler_update', 'Handler_delete']),
            questions: v.Questions ?? 0,
          };
        },
        close: () => conn.end(),
      };
    }
    case 'redis':
    case 'redis-connection': {
      const redis = new Redis(base);
      const writeFlag = new Map<string, boolean>();
      return {
        unit: { reads: 'key lookups (server-wide)', writes: 'write commands (server-wide)' },
        read: async () => {
          const stats = await redis.info('commandstats');
          const keyspace = await redis.info('stats');
          let commands = 0;
          let writes = 0;
          for (const [, command = '', n] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
            if (command === 'info' || command.startsWith('command')) continue;
            commands += Number(n);
            if (!writeFlag.has(command)) {
              const info = (await redis.call('COMMAND', 'INFO', command.split('|')[0] ?? command)) as [[string, number, string[]] | null];
              writeFlag.set(command, info[0]?.[2]?.includes('write') ?? false);
            }
            if (writeFlag.get(command)) writes += Number(n);
          }
          return { reads: num(keyspace, /^keyspace_hits:(\d+)/m) + num(keyspace, /^keyspace_misses:(\d+)/m), writes, commands };
        },
        close: async () => void redis.disconnect(),
      };
    }
    case 'etcd': {
      const u = new URL(base.replace(/^[a-z0-9]+:/, 'http:'));
      const metrics = `http://${u.hostname}:${u.port || '2379'}/metrics`;
      return {
        unit: { reads: 'range requests (server-wide)', writes: 'keys put or deleted (server-wide)' },
        read: async () => {
          const text = await (await fetch(metrics)).text();
          const m = (n: string) => num(text, new RegExp(`^${n} (\\S+)$`, 'm'));
          return { reads: m('etcd_mvcc_range_total'), writes: m('etcd_mvcc_put_total') + m('etcd_mvcc_delete_total'), txns: m('etcd_mvcc_txn_total') };
        },
        close: async () => undefined,
      };
    }
    case 'zookeeper': {
      const u = new URL(base.replace(/^[a-z0-9]+:/, 'http:'));
      const srvr = () =>
        new Promise<string>((resolve, reject) => {
          let out = '';
          const socket = createConnection({ host: u.hostname, port: Number(u.port || 2181) }, () => socket.end('srvr'));
          socket.setTimeout(5000, () => socket.destroy(new Error('zookeeper srvr: timeout')));
          socket.on('data', (chunk: Buffer) => (out += chunk.toString()));
          socket.on('error', reject);
          socket.on('close', () => resolve(out));
        });
      return {
        unit: calls,
        read: async () => {
          const text = await srvr();
          return { ...own(), packetsReceived: num(text, /^Received: (\d+)/m), packetsSent: num(text, /^Sent: (\d+)/m) };
        },
        close: async () => undefined,
      };
    }
    case 'sqlite':
      return { unit: calls, read: async () => ({ ...own() }), close: async () => undefined };
  }
}

/** Tasks held per node session and in all (by live sessions other than `exclude`). */
interface Snapshot {
  readonly at: number;
  readonly owned: number;
  readonly perNode: Map<string, number>;
  readonly sessionOf: Map<string, string>;
}

async function snapshot(store: Store, exclude?: string): Promise<Snapshot> {
  const [sessions, holders] = await Promise.all([store.listSessions(), store.listHolders(`task/${TASK_PREFIX}`)]);
  const at = Date.now();
  const perNode = new Map<string, number>();
  const sessionOf = new Map<string, string>();
  for (const s of sessions) {
    if (s.info.role === 'monitor') continue;
    perNode.set(s.id, 0);
    sessionOf.set(s.info.id, s.id);
  }
  let owned = 0;
  for (const h of holders) {
    const n = perNode.get(h.sessionId);
    if (n === undefined || h.sessionId === exclude) continue;
    perNode.set(h.sessionId, n + 1);
    owned += 1;
  }
  return { at, owned, perNode, sessionOf };
}

/** Linux: utime + stime of `pid` in ms (clock ticks of 10 ms), or null. */
function processCpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    // After "pid (comm) ": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/** Runs `fn` but gives up waiting after `ms` (a close that hangs must not hang the bench). */
const bounded = (ms: number, fn: () => Promise<unknown>) => Promise.race([fn().catch(() => undefined), sleep(ms)]);

export async function measureScale(name: StoreName, url: string, cluster: string, nodes: number, tasks: number, options: ScaleOptions): Promise<ScalePoint> {
  const perHandle = Math.ceil(nodes / 10);
  const group = new ChildGroup();
  const handles: { raw: Store; counter: ReturnType<typeof countingStore> }[] = [];
  const clusters: Cluster[] = [];
  let observer: Store | undefined;
  let counters: Counters | undefined;
  const own = (): OwnCalls => {
    let reads = 0;
    let writes = 0;
    for (const h of handles) {
      reads += h.counter.counts.roundTrips - h.counter.counts.writes;
      writes += h.counter.counts.writes;
    }
    return { reads, writes };
  };
  const lo = Math.min(Math.floor(tasks / nodes), Math.ceil((0.85 * tasks) / nodes));
  const hi = Math.max(Math.ceil(tasks / nodes), Math.floor((1.15 * tasks) / nodes));
  const point: ScalePoint = {
    nodes, tasks, handles: 0, ownedMs: null, settleMs: null, readsPerSec: null, writesPerSec: null, unit: { reads: '', writes: '' },
    server: {}, callsPerSec: null, cpu: null, victimCpu: null, windowS: null, victimShare: null, failoverMs: null, spread: null,
  };
  const seen = { errors: 0, slowestMs: 0 };
  point.observer = seen;
  let observerError = '';
  // A store too busy to answer the observer is part of what is measured: the failed listing is counted
  // and the next one tried, instead of ending the point.
  const look = async (store: Store, exclude?: string): Promise<Snapshot | undefined> => {
    const t = Date.now();
    try {
      const s = await snapshot(store, exclude);
      seen.slowestMs = Math.max(seen.slowestMs, s.at - t);
      return s;
    } catch (error) {
      seen.errors += 1;
      observerError = errorText(error);
      return undefined;
    }
  };
  const label = `scale ${name} n${nodes}t${tasks}`;
  // 100 × 10,000 in this process: a million task runners on one core fell behind, lost their sessions and
  // ran the bench out of memory before it wrote its results (docs/scale.md). Beyond the limit the N − 1
  // nodes run in host processes of at most that many runners each, and none in this one.
  const hostCount = (nodes - 1) * tasks > MAX_IN_PROCESS_RUNNERS ? Math.ceil(((nodes - 1) * tasks) / MAX_IN_PROCESS_RUNNERS) : 0;
  const hosts: Child[] = [];
  try {
    observer = await openStore(url, { cluster });
    counters = await serverCounters(name, url, own);
    point.unit = counters.unit;
    const victim: Child = await group.spawn(VICTIM, { kind: 'baton', store: url, cluster, tasks: { prefix: TASK_PREFIX, count: tasks, every: '24h' }, startOn: 'SIGUSR2' }, 60_000);
    for (let h = 0; h < hostCount; h++) {
      const count = Math.floor((nodes - 1) / hostCount) + (h < (nodes - 1) % hostCount ? 1 : 0);
      const config = { kind: 'baton', store: url, cluster, tasks: { prefix: TASK_PREFIX, count: tasks, every: '24h' }, startOn: 'SIGUSR2', nodes: { count, perHandle } };
      hosts.push(await group.spawn(`scale-host${h}`, config, 300_000));
    }
    for (let i = 0; hostCount === 0 && i < nodes - 1; i++) {
      if (i % perHandle === 0) {
        const raw = await openStore(url, { cluster });
        handles.push({ raw, counter: countingStore(raw) });
      }
      const handle = handles[handles.length - 1] as (typeof handles)[number];
      const c = await createCluster({ store: handle.counter.store, name: cluster, node: { id: `scale-${i}` }, logger: quiet });
      for (let t = 0; t < tasks; t++) c.task(`${TASK_PREFIX}${t}`, { every: '24h' }, () => undefined);
      clusters.push(c);
    }
    point.handles = hostCount > 0 ? hosts.length * Math.ceil((nodes - 1) / hostCount / perHandle) + 1 : handles.length + 1;
    if (hostCount > 0) point.hostProcesses = hostCount;
    progress(
      hostCount > 0
        ? `${label}: ${nodes - 1} nodes in ${hostCount} host processes (${perHandle} per handle) + the victim process; starting`
        : `${label}: ${nodes - 1} nodes on ${handles.length} handles + the victim process; starting`,
    );

    // Settle.
    const started = Date.now();
    group.signal(victim, 'SIGUSR2');
    for (const host of hosts) group.signal(host, 'SIGUSR2');
    let startError: unknown;
    let startFailures = 0;
    const starting = Promise.all(
      clusters.map((c) =>
        c.start().catch((error: unknown) => {
          startFailures += 1;
          startError = new Error(`${startFailures} of ${nodes - 1} in-process nodes failed to start: ${errorText(error)}`);
        }),
      ),
    );
    let last: Snapshot | undefined;
    const hostsAlive = () => hosts.every((h) => h.alive);
    while (Date.now() - started < options.capMs && startError === undefined && victim.alive && hostsAlive()) {
      const s = await look(observer);
      if (s === undefined) {
        await sleep(SETTLE_POLL_MS);
        continue;
      }
      last = s;
      if (point.ownedMs === null && s.owned === tasks) point.ownedMs = s.at - started;
      const counts = [...s.perNode.values()];
      if (s.owned === tasks && counts.length === nodes && counts.every((n) => n >= lo && n <= hi)) {
        point.settleMs = s.at - started;
        break;
      }
      await sleep(Math.max(0, SETTLE_POLL_MS - (Date.now() - s.at)));
    }
    if (last) {
      const counts = [...last.perNode.values()];
      point.spread = counts.length > 0 ? { min: Math.min(...counts), max: Math.max(...counts) } : null;
    }
    if (startError !== undefined) throw startError;
    if (!victim.alive) throw new Error(`${label}: the victim process exited`);
    if (!hostsAlive()) throw new Error(`${label}: a host process exited`);
    if (point.settleMs === null) {
      point.reason = `not settled within ${options.capMs / 1000} s: ${last?.owned ?? 0}/${tasks} owned, ${last?.perNode.size ?? 0}/${nodes} node sessions, held per node ${point.spread?.min ?? '?'}…${point.spread?.max ?? '?'} (wanted ${lo}…${hi})${seen.errors > 0 ? `; ${seen.errors} observer listings failed, last: ${observerError}` : ''}`;
      progress(`${label}: ${point.reason}`);
    } else {
      progress(`${label}: all owned after ${point.ownedMs} ms, spread ${point.spread?.min}…${point.spread?.max} after ${point.settleMs} ms`);
    }
    // Starts that are still running (a node waiting for a round trip) must not spill into the window.
    await Promise.race([starting, sleep(10_000)]);
    // Nor the one-time declarations (`decl/`, one record per task), which the node that stored the new
    // task list writes after its start (src/scheduler/task-sets.ts): timed, then out of the window.
    const declaring = Date.now();
    while (Date.now() - declaring < options.capMs && (await observer.list('decl/')).length < tasks) await sleep(SETTLE_POLL_MS);
    point.declaredMs = Date.now() - started;
    // And not the tail of the rebalancing: the spread counts as settled within ±15 %, but the owners
    // that started with more than their share hand over the rest (to the exact plan) after it.
    const stillSince = Date.now();
    let signature = '';
    for (let still = 0; still < STILL_LOOKS && Date.now() - stillSince < options.capMs; await sleep(STILL_POLL_MS)) {
      const holders = await observer.listHolders(`task/${TASK_PREFIX}`);
      const next = `${holders.length}:${holders.reduce((sum, h) => sum + h.token, 0n)}`;
      still = next === signature ? still + 1 : 0;
      signature = next;
    }
    point.stillMs = Date.now() - started;

    // Idle window: no observer reads.
    for (const h of handles) h.counter.reset();
    const before = await counters.read();
    const victimBefore = processCpuMs(victim.pid);
    const hostsBefore = hosts.map((h) => processCpuMs(h.pid) ?? 0);
    const cpuBefore = process.cpuUsage();
    const t0 = Date.now();
    await sleep(options.windowMs);
    const cpu = process.cpuUsage(cpuBefore);
    const victimAfter = processCpuMs(victim.pid);
    const hostsMs = hosts.reduce((sum, h, i) => sum + (processCpuMs(h.pid) ?? 0) - (hostsBefore[i] ?? 0), 0);
    const after = await counters.read();
    const seconds = (Date.now() - t0) / 1000;
    point.windowS = round(seconds, 1);
    for (const [k, v] of Object.entries(after)) point.server[k] = round((v - (before[k] ?? 0)) / seconds, 1);
    point.readsPerSec = point.server.reads ?? null;
    point.writesPerSec = point.server.writes ?? null;
    const calls = own();
    // Host processes' calls are not counted (their handles are not wrapped): none, rather than a wrong total.
    point.callsPerSec = hostCount > 0 ? null : { reads: round(calls.reads / seconds, 1), writes: round(calls.writes / seconds, 1) };
    point.cpu = round(((cpu.user + cpu.system) / 1000 + hostsMs) / (seconds * 1000), 3);
    point.victimCpu = victimBefore !== null && victimAfter !== null ? round((victimAfter - victimBefore) / (seconds * 1000), 3) : null;
    progress(
      `${label}: idle ${point.readsPerSec} ${point.unit.reads}/s, ${point.writesPerSec} ${point.unit.writes}/s, ` +
        `CPU ${point.cpu} cores here + ${point.victimCpu} victim (${JSON.stringify(point.server)})`,
    );

    // Failover of the victim's share.
    if (point.ownedMs === null) {
      point.reason = `${point.reason ?? ''}; failover not measured: never all owned`;
      return point;
    }
    const s = (await look(observer)) ?? (await look(observer));
    if (s === undefined) throw new Error(`${label}: the observer could not list before the failover: ${observerError}`);
    const victimSession = s.sessionOf.get(VICTIM);
    if (victimSession === undefined) throw new Error(`${label}: the victim has no session`);
    point.victimShare = s.perNode.get(victimSession) ?? 0;
    const killedAt = Date.now();
    group.signal(victim, 'SIGKILL');
    while (Date.now() - killedAt < options.failoverCapMs) {
      const f = await look(observer, victimSession);
      if (f === undefined) {
        await sleep(FAILOVER_POLL_MS);
        continue;
      }
      if (f.owned === tasks) {
        point.failoverMs = f.at - killedAt;
        break;
      }
      await sleep(Math.max(0, FAILOVER_POLL_MS - (Date.now() - f.at)));
    }
    if (point.failoverMs === null) point.reason = `${point.reason ? `${point.reason}; ` : ''}failover: not every task owned again within ${options.failoverCapMs / 1000} s`;
    progress(`${label}: failover of the victim's ${point.victimShare} tasks ${point.failoverMs ?? 'timed out'} ms`);
    return point;
  } catch (error) {
    point.reason = `${point.reason ? `${point.reason}; ` : ''}${errorText(error)}`;
    progress(`${label}: FAILED ${errorText(error)}`);
    return point;
  } finally {
    await bounded(15_000, () => Promise.allSettled(clusters.map((c) => c.close())));
    await bounded(5000, () => Promise.allSettled(handles.map((h) => h.raw.close())));
    await bounded(5000, () => group.stopAll(2000));
    if (observer) await bounded(5000, () => (observer as Store).close());
    if (counters) await bounded(5000, () => (counters as Counters).close());
  }
}
