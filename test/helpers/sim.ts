/** A simulated fleet: several cluster nodes in one process on one memory backend and one FakeClock. */
import { createCluster, type Cluster, type ClusterOptions } from '../../src/node/node.js';
import type { UnitName } from '../../src/scheduler/names.js';
import type { BatonEvents } from '../../src/scheduler/events.js';
import { silentLogger } from '../../src/core/logger.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { MemoryBackend, type MemoryStore } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import type { Clock } from '../../src/core/clock.js';
import type { RunRecord, TaskHandler, TaskOptions } from '../../src/scheduler/task.js';
import type { Store, StoredRecord } from '../../src/stores/contract.js';
import { currentProcessIdentity } from '../../src/core/process-identity.js';
import type { NodeInfo } from '../../src/core/node-info.js';
import { runPrefix } from '../../src/scheduler/keys.js';
import { readStatus } from '../../src/monitor/status.js';

/** One call a node made to its store. */
export interface StoreCall {
  readonly method: string;
  readonly args: readonly unknown[];
  /** Monotonic time of the call. */
  readonly at: number;
}

/**
 * Wraps a store so every call is recorded (and counted per method). The methods are bound to the real
 * store, whose private fields would not work through a plain Proxy.
 */
export function recordingStore<S extends Store>(store: S, clock: Clock): { store: S; calls: StoreCall[]; count(method: string): number } {
  const calls: StoreCall[] = [];
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push({ method: String(prop), args, at: clock.monotonic() });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls, count: (method) => calls.filter((c) => c.method === method).length };
}

/** A NodeInfo for tests that drive stores or session keepers directly. */
export function testNodeInfo(id: string, tasks: string[] = []): NodeInfo {
  return {
    id,
    host: 'test-host',
    pid: process.pid,
    version: 'test',
    labels: {},
    startedAt: 0,
    process: currentProcessIdentity(),
    tasks: Object.fromEntries(tasks.map((t) => [t, { schedule: 'every 1s', mode: 'singleton' as const }])),
  };
}

/**
 * Makes the named methods of one store handle fail at once with StoreUnavailableError, the others
 * working (a store that reads but cannot write: a member without quorum, a read-only replica).
 * @returns a function that makes them work again.
 */
export function failCalls(store: MemoryStore, methods: readonly (keyof Store)[]): () => void {
  const own = store as unknown as Record<string, unknown>;
  for (const method of methods) {
    own[method] = async () => {
      throw new StoreUnavailableError(`memory store: ${method} failed (test fault)`);
    };
  }
  return () => {
    for (const method of methods) delete own[method];
  };
}

export interface SimEvent {
  readonly event: keyof BatonEvents;
  readonly payload: unknown;
  /** Monotonic time of the event. */
  readonly at: number;
}

export interface SimNode {
  readonly id: string;
  readonly cluster: Cluster;
  /** The node's own connection to the backend (sever/heal it). */
  readonly store: MemoryStore;
  /** Every call the node made to its store. */
  readonly calls: StoreCall[];
  readonly events: SimEvent[];
  /** Payloads of one event kind, in order. */
  of<K extends keyof BatonEvents>(event: K): BatonEvents[K][];
}

export interface SimNodeOptions {
  readonly clock?: Clock;
  readonly ttl?: number;
  readonly start?: boolean;
  /** Any other cluster option (scanEvery, claimDelay, rebalanceAfter, labels …). */
  readonly cluster?: Partial<Omit<ClusterOptions, 'store' | 'name' | 'clock'>>;
}

export const EVENT_NAMES: (keyof BatonEvents)[] = [
  'owner:acquired',
  'owner:lost',
  'owner:released',
  'run:started',
  'run:finished',
  'run:succeeded',
  'run:failed',
  'tick:missed',
  'tick:waiting',
  'run:retrying',
  'task:triggered',
  'task:paused',
  'task:resumed',
  'task:conflict',
  'item:started',
  'item:finished',
  'session:lost',
  'session:opened',
  'session:stalled',
  'session:renew-failed',
  'session:close-failed',
  'error',
];

export class Sim {
  readonly clock: FakeClock;
  readonly backend: MemoryBackend;
  readonly nodes: SimNode[] = [];
  /** Every run start, across nodes: (task, tick, node). */
  /** Every run started, by unit (scheduler/names.ts: the task, `task#i` or `task@node`). */
  readonly starts: { unit: string; task: string; tick: number; node: string; at: number }[] = [];
  /** A connection of no node, to look at the store from outside. */
  readonly observer: MemoryStore;

  /** @param startWallMs the wall time the fake clock starts at (default 2026-01-01T00:00:00Z). */
  constructor(startWallMs?: number) {
    this.clock = new FakeClock(startWallMs);
    this.backend = new MemoryBackend({ clock: this.clock });
    this.observer = this.backend.connect('sim');
  }

  async node(id: string, tasks: [string, TaskOptions, TaskHandler<never>?][], options: SimNodeOptions = {}): Promise<SimNode> {
    const store = this.backend.connect('sim');
    const recorded = recordingStore(store, this.clock);
    const cluster = await createCluster({
      ttl: options.ttl ?? 3000,
      ...options.cluster,
      store: recorded.store,
      name: 'sim',
      node: { id, ...options.cluster?.node },
      clock: options.clock ?? this.clock,
      logger: silentLogger,
    });
    const events: SimEvent[] = [];
    const node: SimNode = {
      id,
      cluster,
      store,
      calls: recorded.calls,
      events,
      of: <K extends keyof BatonEvents>(event: K) => events.filter((e) => e.event === event).map((e) => e.payload as BatonEvents[K]),
    };
    for (const [name, opts, handler] of tasks) cluster.task(name, opts, handler ?? (() => undefined));
    for (const name of EVENT_NAMES) {
      cluster.on(name, (payload) => {
        events.push({ event: name, payload, at: this.clock.monotonic() });
        if (name === 'run:started') {
          const p = payload as BatonEvents['run:started'];
          this.starts.push({ unit: p.unit, task: p.task, tick: p.tick, node: id, at: this.clock.monotonic() });
        }
      });
    }
    this.nodes.push(node);
    if (options.start !== false) await cluster.start();
    return node;
  }

  async advance(ms: number, step = 50): Promise<void> {
    for (let done = 0; done < ms; done += step) await this.clock.advance(Math.min(step, ms - done));
  }

  /**
   * Advances in steps until `predicate` holds; returns the fake time it took.
   * @throws when it does not hold within `maxMs`.
   */
  async until(predicate: () => boolean | Promise<boolean>, maxMs: number, step = 10): Promise<number> {
    const start = this.clock.monotonic();
    while (!(await predicate())) {
      if (this.clock.monotonic() - start >= maxMs) throw new Error(`condition not reached within ${maxMs}ms of fake time`);
      await this.clock.advance(step);
    }
    return this.clock.monotonic() - start;
  }

  /** Current owner (node id) of each task, read from the store. */
  async owners(): Promise<Map<string, string | undefined>> {
    const status = await readStatus(this.observer);
    return new Map(status.tasks.map((t) => [t.unit, t.owner?.node]));
  }

  /** How many tasks each node owns, read from the store. */
  async ownedCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const owner of (await this.owners()).values()) if (owner) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    return counts;
  }

  /** The run records of a task, oldest first. */
  async runRecords(task: string): Promise<StoredRecord<RunRecord>[]> {
    return this.observer.list<RunRecord>(runPrefix(task as UnitName));
  }

  /**
   * Checks invariant 3 on the store's records of `task`: between the first and the last record, every tick
   * of the `intervalMs` grid is either a run record or inside a "missed" record's range. Returns the gaps.
   */
  async lostTicks(task: string, intervalMs: number): Promise<number[]> {
    const records = (await this.runRecords(task)).map((r) => r.value);
    const covered = new Set<number>();
    for (const r of records) {
      if (r.status === 'missed' && r.missed) {
        for (let t = r.missed.from; t <= r.tick; t += intervalMs) covered.add(t);
      } else {
        covered.add(r.tick);
      }
    }
    const lost: number[] = [];
    const first = records[0]?.tick;
    const last = records[records.length - 1]?.tick;
    if (first === undefined || last === undefined) return lost;
    for (let t = first; t <= last; t += intervalMs) if (!covered.has(t)) lost.push(t);
    return lost;
  }

  duplicateTicks(): number {
    const seen = new Set<string>();
    let duplicates = 0;
    for (const s of this.starts) {
      const key = `${s.unit}@${s.tick}`;
      if (seen.has(key)) duplicates += 1;
      seen.add(key);
    }
    return duplicates;
  }

  /** Closes every node (healing severed connections first, so close() can release in the store). */
  async closeAll(): Promise<void> {
    for (const n of this.nodes) this.backend.heal(n.store);
    const closing = Promise.allSettled(this.nodes.map((n) => n.cluster.close()));
    // A handler that waits on the fake clock needs time to move to see its signal; let it.
    let settled = false;
    void closing.then(() => (settled = true));
    for (let i = 0; i < 200 && !settled; i++) await this.clock.advance(50);
    if (!settled) throw new Error('closeAll: a node did not close within 10s of fake time (a handler ignoring its signal?)');
  }
}
