/**
 * The chaos workload of one node, whatever runs it: a node process (node.ts, on any store) or an
 * in-process node of the memory store (memory-nodes.ts). See node.ts for what it does and why handlers
 * ignore their abort signals.
 */
import { createCluster } from '../../dist/node/node.js';
import { sleep, type Clock } from '../../dist/core/clock.js';
import { silentLogger } from '../../dist/core/logger.js';
import { SessionKeeper } from '../../dist/cluster/session-keeper.js';
import { resolveSessionTiming } from '../../dist/cluster/session-timing.js';
import { tryAcquireLease, type Lease } from '../../dist/cluster/lease.js';
import type { Store, WriteCondition, WriteResult } from '../../dist/stores/contract.js';
import { LEDGER_PREFIX, LOCK_DATA_PREFIX, LOCK_KEY_PREFIX, monoNow, type HistoryEvent } from './history.js';

export interface ChaosNodeConfig {
  readonly store: string;
  readonly cluster: string;
  readonly id: string;
  readonly history: string;
  readonly tasks: number;
  readonly everyMs: number;
  readonly workMs: number;
  readonly ttlMs: number;
  readonly locks: number;
  readonly skewMs: number;
  readonly unfenced: boolean;
  readonly seed: number;
}

export interface WorkloadEnv {
  readonly config: ChaosNodeConfig;
  /** The node's store, not yet recorded (the workload wraps it). */
  readonly store: Store;
  /** The node's clock: its timers drive every wait of the workload. */
  readonly clock: Clock;
  readonly pid: number;
  readonly record: (event: HistoryEvent) => void;
  /** Progress for the harness (owner changes). */
  readonly tell: (message: object) => void;
}

/** A deterministic PRNG (mulberry32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const errorText = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, 300);

/** The node's store, every ownership call and write recorded with invoke/complete times. */
export class RecordingStore implements Store {
  readonly #inner: Store;
  readonly #node: string;
  readonly #record: (event: HistoryEvent) => void;
  #opCounter = 0;
  constructor(inner: Store, node: string, record: (event: HistoryEvent) => void) {
    this.#inner = inner;
    this.#node = node;
    this.#record = record;
  }
  get kind() {
    return this.#inner.kind;
  }
  get cluster() {
    return this.#inner.cluster;
  }
  get features() {
    return this.#inner.features;
  }
  time() {
    return this.#inner.time();
  }
  openSession(...args: Parameters<Store['openSession']>) {
    return this.#inner.openSession(...args);
  }
  renewSession(id: string) {
    return this.#inner.renewSession(id);
  }
  closeSession(id: string) {
    return this.#inner.closeSession(id);
  }
  listSessions() {
    return this.#inner.listSessions();
  }
  async tryAcquire(key: string, sessionId: string) {
    const invokeM = monoNow();
    try {
      const result = await this.#inner.tryAcquire(key, sessionId);
      const completeM = monoNow();
      if (result.acquired) this.#record({ e: 'acquire', node: this.#node, key, session: sessionId, invokeM, completeM, result: 'ok', token: result.token.toString() });
      else this.#record({ e: 'acquire', node: this.#node, key, session: sessionId, invokeM, completeM, result: 'held', token: result.holder.token.toString() });
      return result;
    } catch (error) {
      this.#record({ e: 'acquire', node: this.#node, key, session: sessionId, invokeM, completeM: monoNow(), result: 'error', error: errorText(error) });
      throw error;
    }
  }
  /** Recorded as one acquisition per key, each spanning the whole call. */
  async tryAcquireMany(keys: readonly string[], sessionId: string) {
    const invokeM = monoNow();
    try {
      const results = await this.#inner.tryAcquireMany(keys, sessionId);
      const completeM = monoNow();
      results.forEach((result, i) => {
        const key = keys[i] as string;
        const token = (result.acquired ? result.token : result.holder.token).toString();
        this.#record({ e: 'acquire', node: this.#node, key, session: sessionId, invokeM, completeM, result: result.acquired ? 'ok' : 'held', token });
      });
      return results;
    } catch (error) {
      const completeM = monoNow();
      for (const key of keys) this.#record({ e: 'acquire', node: this.#node, key, session: sessionId, invokeM, completeM, result: 'error', error: errorText(error) });
      throw error;
    }
  }
  /** Recorded as one release per key, each spanning the whole call. */
  async releaseMany(leases: readonly { key: string; token: bigint }[]) {
    const invokeM = monoNow();
    try {
      const results = await this.#inner.releaseMany(leases);
      const completeM = monoNow();
      leases.forEach((l, i) => this.#record({ e: 'release', node: this.#node, key: l.key, token: l.token.toString(), invokeM, completeM, result: results[i] ? 'ok' : 'not-held' }));
      return results;
    } catch (error) {
      const completeM = monoNow();
      for (const l of leases) this.#record({ e: 'release', node: this.#node, key: l.key, token: l.token.toString(), invokeM, completeM, result: 'error' });
      throw error;
    }
  }
  async release(key: string, token: bigint) {
    const invokeM = monoNow();
    try {
      const ok = await this.#inner.release(key, token);
      this.#record({ e: 'release', node: this.#node, key, token: token.toString(), invokeM, completeM: monoNow(), result: ok ? 'ok' : 'not-held' });
      return ok;
    } catch (error) {
      this.#record({ e: 'release', node: this.#node, key, token: token.toString(), invokeM, completeM: monoNow(), result: 'error' });
      throw error;
    }
  }
  holder(key: string) {
    return this.#inner.holder(key);
  }
  listHolders(prefix: string) {
    return this.#inner.listHolders(prefix);
  }
  get<T = unknown>(key: string) {
    return this.#inner.get<T>(key);
  }
  put(key: string, value: unknown, condition?: WriteCondition): Promise<WriteResult> {
    return this.putAs(condition?.guard ? { key: condition.guard.key, token: condition.guard.token } : undefined, key, value, condition);
  }
  /** A write made under `fence` (recorded as such even when, in the negative control, it carries no guard). */
  async putAs(fence: { key: string; token: bigint } | undefined, key: string, value: unknown, condition?: WriteCondition): Promise<WriteResult> {
    const base = {
      e: 'put' as const,
      node: this.#node,
      key,
      op: this.#opCounter + 1,
      ...(fence ? { fenceKey: fence.key, fenceToken: fence.token.toString() } : {}),
      guarded: condition?.guard !== undefined,
      ...(condition?.ifVersion !== undefined ? { ifVersion: condition.ifVersion } : {}),
    };
    const op = ++this.#opCounter;
    this.#record({ e: 'put-invoke', node: this.#node, key, op, m: monoNow() });
    const invokeM = monoNow();
    try {
      const result = await this.#inner.put(key, value, condition);
      const completeM = monoNow();
      if (result.ok) this.#record({ ...base, invokeM, completeM, result: 'ok', version: result.version });
      else this.#record({ ...base, invokeM, completeM, result: result.reason });
      return result;
    } catch (error) {
      this.#record({ ...base, invokeM, completeM: monoNow(), result: 'error', error: errorText(error) });
      throw error;
    }
  }
  list<T = unknown>(...args: Parameters<Store['list']>) {
    return this.#inner.list<T>(...args);
  }
  /** A conditional delete is recorded (a claim withdrawn); others (clean-ups) are not. */
  async delete(key: string, condition?: WriteCondition) {
    const ifVersion = condition?.ifVersion;
    if (typeof ifVersion !== 'number') return this.#inner.delete(key, condition);
    const op = { e: 'delete', node: this.#node, key, ifVersion, guarded: condition?.guard !== undefined, invokeM: monoNow() } as const;
    try {
      const deleted = await this.#inner.delete(key, condition);
      this.#record({ ...op, completeM: monoNow(), result: deleted ? 'deleted' : 'refused' });
      return deleted;
    } catch (error) {
      this.#record({ ...op, completeM: monoNow(), result: 'error' });
      throw error;
    }
  }
  deleteBefore(prefix: string, beforeKey: string) {
    return this.#inner.deleteBefore(prefix, beforeKey);
  }
  listClusters() {
    return this.#inner.listClusters();
  }
  watch(listener: Parameters<Store['watch']>[0]) {
    return this.#inner.watch(listener);
  }
  close() {
    return this.#inner.close();
  }
}

/** A running workload: `stop()` stops the lock loop, closes the cluster and the lock session. */
export interface Workload {
  stop(): Promise<void>;
}

/**
 * Starts the node's workload on `env.store`: the tasks (checkpoint, guarded ledger write, commit) and the
 * lock loop on a session of its own. Resolves once the cluster started (it throws if the start fails:
 * a cluster starts once, so the runner starts a new node).
 */
export async function startWorkload(env: WorkloadEnv): Promise<Workload> {
  const { config, clock, record, tell } = env;
  const node = config.id;
  const random = mulberry32(config.seed);
  const wait = (ms: number, signal?: AbortSignal) => sleep(clock, ms, signal);
  const store = new RecordingStore(env.store, node, record);
  const cluster = await createCluster({ store, name: config.cluster, node: { id: node }, ttl: config.ttlMs, clock, logger: silentLogger });

  for (let i = 0; i < config.tasks; i++) {
    const task = `t${i}`;
    cluster.task<number>(task, { every: config.everyMs, history: 100_000 }, async (ctx) => {
      const token = ctx.token.toString();
      const tick = ctx.tick.getTime();
      record({ e: 'run', node, what: 'start', task, tick, token, m: monoNow() });
      ctx.signal.addEventListener('abort', () => record({ e: 'signal', node, task, reason: errorText(ctx.signal.reason), m: monoNow() }), {
        once: true,
      });
      const done = (await ctx.checkpoint.get()) ?? 0;
      const fence = { key: `task/${task}`, token: ctx.token };
      // Work that does not honour ctx.signal (on purpose): a node paused here past the TTL wakes as a
      // zombie and sends the guarded ledger write below — only the store's fencing can refuse it.
      await wait(Math.floor(config.workMs * (0.5 + random())));
      const ledger = { token, tick, node };
      if (config.unfenced) {
        await store.putAs(fence, `${LEDGER_PREFIX}${task}`, ledger);
        await store.putAs(fence, `checkpoint/${task}`, { value: done + 1, tick, token, committedAt: clock.now() });
      } else {
        const result = await store.putAs(fence, `${LEDGER_PREFIX}${task}`, ledger, { guard: fence });
        if (!result.ok) throw new Error(`ledger write refused (${result.reason})`);
        await ctx.checkpoint.commit(done + 1);
      }
      record({ e: 'run', node, what: 'end', task, tick, token, m: monoNow() });
    });
  }
  cluster.on('owner:acquired', (e) => {
    record({ e: 'owner', node, what: 'acquired', task: e.unit, token: e.token.toString(), m: monoNow() });
    tell({ type: 'owner', task: e.unit, token: e.token.toString() });
  });
  cluster.on('owner:lost', (e) => {
    record({ e: 'owner', node, what: 'lost', task: e.unit, token: e.token.toString(), reason: e.reason, m: monoNow() });
    tell({ type: 'unowned', task: e.unit });
  });
  cluster.on('owner:released', (e) => {
    record({ e: 'owner', node, what: 'released', task: e.unit, token: e.token.toString(), reason: e.reason, m: monoNow() });
    tell({ type: 'unowned', task: e.unit });
  });
  cluster.on('tick:missed', (e) => record({ e: 'missed', node, task: e.unit, from: e.from, to: e.to, count: e.count, m: monoNow() }));
  cluster.on('session:opened', (e) => record({ e: 'session', node, what: 'opened', session: e.sessionId, m: monoNow() }));
  cluster.on('session:lost', (e) => record({ e: 'session', node, what: 'lost', session: e.sessionId, reason: e.reason, m: monoNow() }));
  cluster.on('session:stalled', (e) => record({ e: 'session', node, what: 'stalled', lagMs: e.lagMs, m: monoNow() }));

  // --- the lock workload, on a session of its own.
  const stopLocks = new AbortController();
  const keeper = new SessionKeeper({
    store,
    info: { ...cluster.node, id: `${node}-locks` },
    timing: resolveSessionTiming({ ttl: config.ttlMs }),
    clock,
    emit: () => undefined,
  });
  const lockLoop = async () => {
    while (!stopLocks.signal.aborted) {
      await wait(50 + Math.floor(random() * 200), stopLocks.signal).catch(() => undefined);
      const session = keeper.current;
      if (!session || stopLocks.signal.aborted) continue;
      const lock = `${LOCK_KEY_PREFIX}${Math.floor(random() * config.locks)}`;
      let lease: Lease | undefined;
      try {
        const outcome = await tryAcquireLease(store, session, lock);
        if (!('lease' in outcome)) continue;
        lease = outcome.lease;
        const writes = 1 + Math.floor(random() * 3);
        for (let w = 0; w < writes; w++) {
          const data = { token: lease.token.toString(), node, w };
          const fence = { key: lock, token: lease.token };
          if (config.unfenced) await store.putAs(fence, `${LOCK_DATA_PREFIX}${lock.slice(LOCK_KEY_PREFIX.length)}`, data);
          else {
            await store.putAs(fence, `${LOCK_DATA_PREFIX}${lock.slice(LOCK_KEY_PREFIX.length)}`, data, { guard: fence });
          }
          await wait(20 + Math.floor(random() * 100));
        }
      } catch {
        // fenced, lost, or the store is unreachable: the history says which
      } finally {
        if (lease && !stopLocks.signal.aborted) await lease.release(new Error('done')).catch(() => undefined);
      }
    }
  };

  record({ e: 'start', node, pid: env.pid, m: monoNow(), skewMs: config.skewMs, unfenced: config.unfenced, seed: config.seed });
  await cluster.start();
  let locks: Promise<void> = Promise.resolve();
  if (config.locks > 0) {
    await keeper.start();
    locks = lockLoop();
  }
  record({ e: 'ready', node, m: monoNow() });

  let stopping: Promise<void> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        stopLocks.abort(new Error('stopping'));
        await locks.catch(() => undefined);
        await Promise.allSettled([cluster.close(), keeper.close()]);
        await store.close().catch(() => undefined);
        record({ e: 'stop', node, m: monoNow() });
      })()),
  };
}
