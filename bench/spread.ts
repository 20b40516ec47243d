/**
 * Spread: 300 tasks (every 24 h, so none runs) declared by 3 nodes started together in this process;
 * once every task is owned and ownership has been still for 1 s (or `maxMs` passed), count the tasks
 * each node owns. Rebalancing (hand-over to a node alive for one TTL) is allowed to happen first: the
 * count is taken after max(settle, TTL + 2 s).
 */
import { createCluster, type Cluster } from '../src/node/node.js';
import { silentLogger } from '../src/core/logger.js';
import { progress, sleep, waitUntil } from './util.js';

export interface SpreadResult {
  tasks: number;
  nodes: number;
  min: number;
  max: number;
  perNode: number[];
  settleMs: number;
}

export async function measureSpread(url: string, cluster: string, tasks = 300, nodes = 3, ttlMs = 5000): Promise<SpreadResult> {
  const clusters: Cluster[] = [];
  const owned: number[] = Array.from({ length: nodes }, () => 0);
  let lastChange = Date.now();
  try {
    for (let i = 0; i < nodes; i++) {
      const c = await createCluster({ store: url, name: cluster, node: { id: `spread-${i}` }, logger: silentLogger });
      for (let t = 0; t < tasks; t++) c.task(`s${t}`, { every: '24h' }, () => undefined);
      const bump = (d: number) => () => {
        owned[i] = (owned[i] ?? 0) + d;
        lastChange = Date.now();
      };
      c.on('owner:acquired', bump(1));
      c.on('owner:released', bump(-1));
      c.on('owner:lost', bump(-1));
      clusters.push(c);
    }
    const started = Date.now();
    await Promise.all(clusters.map((c) => c.start()));
    const total = () => owned.reduce((a, b) => a + b, 0);
    await waitUntil(`${tasks} tasks owned`, () => total() === tasks && Date.now() - lastChange >= 1000, 60_000, 50);
    const wait = started + ttlMs + 2000 - Date.now();
    if (wait > 0) await sleep(wait);
    await waitUntil('ownership still', () => total() === tasks && Date.now() - lastChange >= 1000, 30_000, 50);
    const result = { tasks, nodes, min: Math.min(...owned), max: Math.max(...owned), perNode: [...owned], settleMs: Date.now() - started };
    progress(`spread ${url.split(':')[0]}: ${owned.join('/')} of ${tasks}`);
    return result;
  } finally {
    await Promise.allSettled(clusters.map((c) => c.close()));
  }
}
