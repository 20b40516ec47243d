/** A simulated fleet: several cluster nodes in one process on one memory backend and one FakeClock. */
import { createCluster, type Cluster } from '../../src/cluster.js';
import type { BatonEvents } from '../../src/scheduler/events.js';
import { silentLogger } from '../../src/core/logger.js';
import { MemoryBackend, type MemoryStore } from '../../src/stores/memory/memory-store.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import type { Clock } from '../../src/core/clock.js';
import type { TaskHandler, TaskOptions } from '../../src/scheduler/task.js';

export interface SimNode {
  readonly id: string;
  readonly cluster: Cluster;
  readonly store: MemoryStore;
  readonly events: { event: keyof BatonEvents; payload: unknown; at: number }[];
}

export class Sim {
  readonly clock = new FakeClock();
  readonly backend = new MemoryBackend({ clock: this.clock });
  readonly nodes: SimNode[] = [];
  /** Every run start, across nodes: (task, tick, node). */
  readonly starts: { task: string; tick: number; node: string; at: number }[] = [];

  async node(
    id: string,
    tasks: [string, TaskOptions, TaskHandler<never>?][],
    options: { clock?: Clock; ttl?: number; start?: boolean } = {},
  ): Promise<SimNode> {
    const store = this.backend.connect('sim');
    const cluster = await createCluster({
      store,
      name: 'sim',
      node: { id },
      clock: options.clock ?? this.clock,
      logger: silentLogger,
      ttl: options.ttl ?? 3000,
    });
    const node: SimNode = { id, cluster, store, events: [] };
    for (const [name, opts, handler] of tasks) cluster.task(name, opts, handler ?? (() => undefined));
    const names: (keyof BatonEvents)[] = [
      'owner:acquired', 'owner:lost', 'owner:released', 'run:started', 'run:finished', 'tick:missed',
      'session:lost', 'session:opened', 'session:stalled', 'error',
    ];
    for (const name of names) {
      cluster.on(name, (payload) => {
        node.events.push({ event: name, payload, at: this.clock.monotonic() });
        if (name === 'run:started') {
          const p = payload as BatonEvents['run:started'];
          this.starts.push({ task: p.task, tick: p.tick, node: id, at: this.clock.monotonic() });
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

  /** Current owner (node id) of each task, read from the store. */
  async owners(): Promise<Map<string, string | undefined>> {
    const status = await this.nodes[0]!.cluster.status();
    return new Map(status.tasks.map((t) => [t.name, t.owner?.node]));
  }

  duplicateTicks(): number {
    const seen = new Set<string>();
    let duplicates = 0;
    for (const s of this.starts) {
      const key = `${s.task}@${s.tick}`;
      if (seen.has(key)) duplicates += 1;
      seen.add(key);
    }
    return duplicates;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.cluster.close()));
  }
}
