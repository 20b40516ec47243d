/**
 * One chaos node: a real process running the BUILT library (dist/), like a user's service would, with a
 * workload and a recorder. Started by the harness (`node --import tsx test/chaos/node.ts --config JSON`).
 *
 * Workload:
 * - `tasks` singleton tasks every `everyMs`: each run reads the fenced checkpoint, works a little, writes a
 *   ledger record guarded by the task's owner key and token, and commits checkpoint + 1;
 * - `locks` locks taken and released in a loop through a second session (SessionKeeper + Lease from dist):
 *   every hold writes guarded records under the lock.
 * Every store call goes through a recording wrapper that writes invoke/complete records to the history
 * file (see history.ts). stdin takes commands from the harness: `{"cmd":"skew","offsetMs":N}`.
 *
 * Handlers and lock holders do not honour their abort signals (on purpose), so zombies do send writes.
 * `unfenced: true` is the NEGATIVE CONTROL, a switch of this test node only: the workload's own writes are
 * sent without a guard and handlers ignore their abort signal, so the checker must find violations.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { hostname } from 'node:os';
import { createCluster } from '../../dist/cluster.js';
import { systemClock, type Clock } from '../../dist/core/clock.js';
import { silentLogger } from '../../dist/core/logger.js';
import { openStore } from '../../dist/stores/open-store.js';
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

const config = JSON.parse(process.argv[process.argv.indexOf('--config') + 1] ?? '{}') as ChaosNodeConfig;
const node = config.id;
const fd = openSync(config.history, 'a');
let closed = false;

/** One write(2) per line: a SIGKILL can cut the history short but never in the middle of a line. */
function record(event: HistoryEvent): void {
  if (closed) return;
  writeSync(fd, `${JSON.stringify(event)}\n`);
}
/** Progress for the harness (owner changes), one JSON line on stdout. */
function tell(message: object): void {
  process.stdout.write(`${JSON.stringify({ node, m: monoNow(), ...message })}\n`);
}

// --- clock skew: an offset on the wall clock only; monotonic time and timers are the system's.
let offsetMs = config.skewMs;
const clock: Clock = {
  now: () => Date.now() + offsetMs,
  monotonic: () => systemClock.monotonic(),
  setTimer: (ms, fn) => systemClock.setTimer(ms, fn),
};

// --- a deterministic PRNG per node (mulberry32), seeded by the harness.
let seed = config.seed >>> 0;
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const errorText = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, 300);

let opCounter = 0;

/** The node's store, every ownership call and write recorded with invoke/complete times. */
class RecordingStore implements Store {
  readonly #inner: Store;
  constructor(inner: Store) {
    this.#inner = inner;
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
      if (result.acquired) record({ e: 'acquire', node, key, session: sessionId, invokeM, completeM, result: 'ok', token: result.token.toString() });
      else record({ e: 'acquire', node, key, session: sessionId, invokeM, completeM, result: 'held', token: result.holder.token.toString() });
      return result;
    } catch (error) {
      record({ e: 'acquire', node, key, session: sessionId, invokeM, completeM: monoNow(), result: 'error', error: errorText(error) });
      throw error;
    }
  }
  async release(key: string, token: bigint) {
    const invokeM = monoNow();
    try {
      const ok = await this.#inner.release(key, token);
      record({ e: 'release', node, key, token: token.toString(), invokeM, completeM: monoNow(), result: ok ? 'ok' : 'not-held' });
      return ok;
    } catch (error) {
      record({ e: 'release', node, key, token: token.toString(), invokeM, completeM: monoNow(), result: 'error' });
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
      node,
      key,
      op: opCounter + 1,
      ...(fence ? { fenceKey: fence.key, fenceToken: fence.token.toString() } : {}),
      guarded: condition?.guard !== undefined,
      ...(condition?.ifVersion !== undefined ? { ifVersion: condition.ifVersion } : {}),
    };
    const op = ++opCounter;
    record({ e: 'put-invoke', node, key, op, m: monoNow() });
    const invokeM = monoNow();
    try {
      const result = await this.#inner.put(key, value, condition);
      const completeM = monoNow();
      if (result.ok) record({ ...base, invokeM, completeM, result: 'ok', version: result.version });
      else record({ ...base, invokeM, completeM, result: result.reason });
      return result;
    } catch (error) {
      record({ ...base, invokeM, completeM: monoNow(), result: 'error', error: errorText(error) });
      throw error;
    }
  }
  list<T = unknown>(...args: Parameters<Store['list']>) {
    return this.#inner.list<T>(...args);
  }
  delete(key: string, condition?: WriteCondition) {
    return this.#inner.delete(key, condition);
  }
  deleteBefore(prefix: string, beforeKey: string) {
    return this.#inner.deleteBefore(prefix, beforeKey);
  }
  watch(listener: Parameters<Store['watch']>[0]) {
    return this.#inner.watch(listener);
  }
  close() {
    return this.#inner.close();
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function main(): Promise<void> {
  record({ e: 'start', node, pid: process.pid, m: monoNow(), skewMs: offsetMs, unfenced: config.unfenced, seed: config.seed });
  // A service retries its start while the store is unreachable (a restart or a cut may be in progress).
  let inner: Store | undefined;
  for (let attempt = 1; !inner; attempt++) {
    try {
      inner = await openStore(config.store, { cluster: config.cluster, clock });
    } catch (error) {
      if (attempt >= 30) throw error;
      await pause(500);
    }
  }
  const store = new RecordingStore(inner);
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
      await pause(Math.floor(config.workMs * (0.5 + random())));
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
    record({ e: 'owner', node, what: 'acquired', task: e.task, token: e.token.toString(), m: monoNow() });
    tell({ type: 'owner', task: e.task, token: e.token.toString() });
  });
  cluster.on('owner:lost', (e) => {
    record({ e: 'owner', node, what: 'lost', task: e.task, token: e.token.toString(), reason: e.reason, m: monoNow() });
    tell({ type: 'unowned', task: e.task });
  });
  cluster.on('owner:released', (e) => {
    record({ e: 'owner', node, what: 'released', task: e.task, token: e.token.toString(), reason: e.reason, m: monoNow() });
    tell({ type: 'unowned', task: e.task });
  });
  cluster.on('tick:missed', (e) => record({ e: 'missed', node, task: e.task, from: e.from, to: e.to, count: e.count, m: monoNow() }));
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
      await pause(50 + Math.floor(random() * 200), stopLocks.signal).catch(() => undefined);
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
          await pause(20 + Math.floor(random() * 100));
        }
      } catch {
        // fenced, lost, or the store is unreachable: the history says which
      } finally {
        if (lease && !stopLocks.signal.aborted) await lease.release(new Error('done')).catch(() => undefined);
      }
    }
  };

  // --- commands from the harness.
  createInterface({ input: process.stdin }).on('line', (line) => {
    try {
      const cmd = JSON.parse(line) as { cmd: string; offsetMs?: number };
      if (cmd.cmd === 'skew' && typeof cmd.offsetMs === 'number') {
        offsetMs = cmd.offsetMs;
        record({ e: 'skew', node, offsetMs, m: monoNow() });
      }
    } catch {
      // ignore malformed commands
    }
  });

  let stopping: Promise<void> | undefined;
  let locks: Promise<void> = Promise.resolve();
  const shutdown = () => {
    stopping ??= (async () => {
      stopLocks.abort(new Error('stopping'));
      await locks.catch(() => undefined);
      await Promise.allSettled([cluster.close(), keeper.close()]);
      await store.close().catch(() => undefined);
      record({ e: 'stop', node, m: monoNow() });
      closed = true;
      closeSync(fd);
      process.exit(0);
    })();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  // start() leaves nothing running when it fails; a cluster starts once, so the harness restarts the node.
  await cluster.start();
  if (config.locks > 0) {
    await keeper.start();
    locks = lockLoop();
  }
  record({ e: 'ready', node, m: monoNow() });
  tell({ type: 'ready', pid: process.pid, host: hostname() });
}

process.on('unhandledRejection', (reason) => {
  process.stderr.write(`${node}: unhandled rejection: ${errorText(reason)}\n`);
});

main().catch((error: unknown) => {
  process.stderr.write(`${node}: failed to start: ${errorText(error)}\n`);
  process.exit(3);
});
