/**
 * An in-process chaos node on the memory store. The memory store lives inside one process, so its nodes
 * cannot be processes; instead each node runs the same workload (workload.ts) in the harness process,
 * on its own handle of one shared MemoryBackend, with the process faults mimicked:
 * - SIGSTOP/SIGCONT: the node is *frozen* — its timers do not fire and its store calls neither start
 *   nor return until it is thawed; then its late timers fire and its held answers arrive, as after a
 *   real SIGCONT (its session keeper sees the stall, its handlers wake as zombies and send their writes);
 * - SIGKILL: frozen for ever, its history closed and its handle severed: it never acts again, and its
 *   session expires on the backend after the TTL;
 * - cut: the backend severs the node's handle (calls fail as on a lost connection) until restored;
 * - skew: an offset on the node's wall clock.
 * The store, its TTLs (backend time) and the checker are the real ones.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { systemClock, type Clock } from '../../dist/core/clock.js';
import { MemoryBackend, type MemoryStore } from '../../dist/stores/memory/memory-store.js';
import type { Change, Store } from '../../dist/stores/contract.js';
import type { NodeMessage, RunningNode } from './harness.js';
import { monoNow, type HistoryEvent } from './history.js';
import { errorText, startWorkload, type ChaosNodeConfig, type Workload } from './workload.js';

export interface MemoryChaos {
  readonly backend: MemoryBackend;
}

export function memoryChaos(): MemoryChaos {
  return { backend: new MemoryBackend({ clock: systemClock }) };
}

export interface MemoryNode extends RunningNode {
  readonly link: { cut(): void; restore(): void };
}

/** Holds a node's timer callbacks and store answers while it is frozen; drops them once it is dead. */
class Freezer {
  #frozen = false;
  #dead = false;
  #held: (() => void)[] = [];

  get dead(): boolean {
    return this.#dead;
  }

  run(fn: () => void): void {
    if (this.#dead) return;
    if (this.#frozen) this.#held.push(fn);
    else fn();
  }

  freeze(): void {
    this.#frozen = true;
  }

  thaw(): void {
    if (this.#dead) return;
    this.#frozen = false;
    for (const fn of this.#held.splice(0)) fn();
  }

  kill(): void {
    this.#dead = true;
    this.#held = [];
  }

  /** The node's clock: wall time with an offset; timers that fire only while the node runs. */
  clock(offset: () => number): Clock {
    return {
      now: () => Date.now() + offset(),
      monotonic: () => systemClock.monotonic(),
      setTimer: (ms, fn) => systemClock.setTimer(ms, () => this.run(fn)),
    };
  }

  /** The node's store: calls start, and answers and change hints arrive, only while the node runs. */
  store(inner: MemoryStore): Store {
    const gate = <T>(call: () => Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        this.run(() => {
          call().then(
            (value) => this.run(() => resolve(value)),
            (error: unknown) => this.run(() => reject(error)),
          );
        });
      });
    return new Proxy(inner, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        if (prop === 'watch') {
          return (listener: (change: Change) => void) => target.watch((change) => this.run(() => listener(change)));
        }
        if (prop === 'close') return () => target.close();
        return (...args: unknown[]) => gate(() => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      },
    }) as Store;
  }
}

/** Starts an in-process node running the chaos workload on its own handle of `memory.backend`. */
export function startMemoryNode(options: {
  config: ChaosNodeConfig;
  memory: MemoryChaos;
  onMessage: (message: NodeMessage) => void;
  onExit: (node: RunningNode, how: string) => void;
  errorFile: string;
}): MemoryNode {
  const { config, memory } = options;
  const id = config.id;
  const freezer = new Freezer();
  let offsetMs = config.skewMs;
  const fd = openSync(config.history, 'a');
  let open = true;
  const record = (event: HistoryEvent) => {
    if (open && !freezer.dead) writeSync(fd, `${JSON.stringify(event)}\n`);
  };
  const closeHistory = () => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
  const handle = memory.backend.connect(config.cluster);
  let resolveExited: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => (resolveExited = resolve));
  let workload: Workload | undefined;
  const exit = (how: string) => {
    if (!node.alive) return;
    closeHistory();
    resolveExited();
    options.onExit(node, how);
  };
  const node: MemoryNode = {
    id,
    signal: (signal) => {
      switch (signal) {
        case 'SIGSTOP':
          freezer.freeze();
          break;
        case 'SIGCONT':
          freezer.thaw();
          break;
        case 'SIGKILL':
          freezer.kill();
          memory.backend.sever(handle);
          exit('SIGKILL');
          break;
        case 'SIGTERM':
          freezer.thaw();
          void (workload?.stop() ?? Promise.resolve()).finally(() => exit('0'));
          break;
      }
    },
    skew: (ms) => {
      offsetMs = ms;
      record({ e: 'skew', node: id, offsetMs, m: monoNow() });
    },
    exited,
    alive: true,
    ready: false,
    expectedExit: false,
    link: { cut: () => memory.backend.sever(handle), restore: () => memory.backend.heal(handle) },
  };
  const tell = (message: object) => {
    if (!freezer.dead) options.onMessage({ node: id, m: monoNow(), ...(message as { type: string }) });
  };
  startWorkload({ config, store: freezer.store(handle), clock: freezer.clock(() => offsetMs), pid: process.pid, record, tell })
    .then((started) => {
      workload = started;
      tell({ type: 'ready' });
    })
    .catch((error: unknown) => {
      if (freezer.dead) return;
      const fdErr = openSync(options.errorFile, 'a');
      writeSync(fdErr, `${id}: failed to start: ${errorText(error)}\n`);
      closeSync(fdErr);
      exit('3');
    });
  return node;
}
