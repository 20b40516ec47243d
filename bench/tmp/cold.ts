import { createCluster, type Cluster } from '../../src/node/node.js';
import { silentLogger } from '../../src/core/logger.js';
import { openStore } from '../../src/stores/open-store.js';
import type { Store } from '../../src/stores/contract.js';
const [nodes = 30, tasks = 1000, perHandle = 10, seconds = 40] = process.argv.slice(2).map(Number);
const url = 'postgres://postgres@127.0.0.1:5432/test?schema=baton_probe';
const name = process.env.COLD_NAME ?? `cold${Date.now()}`;
const stores: Store[] = [];
const clusters: Cluster[] = [];
const owned = new Array(nodes).fill(0);
let acquired = 0, released = 0;
const reasons = new Map<string, number>();
for (let i = 0; i < nodes; i++) {
  if (i % perHandle === 0) stores.push(await openStore(url, { cluster: name }));
  const c = await createCluster({ store: stores[stores.length - 1]!, name, node: { id: `n${i}-${process.pid}` }, logger: silentLogger });
  for (let t = 0; t < tasks; t++) c.task(`t${t}`, { every: '24h' }, () => undefined);
  c.on('owner:acquired', () => { owned[i]++; acquired++; });
  c.on('owner:released', () => { owned[i]--; released++; });
  c.on('owner:lost', (e) => { owned[i]--; const k = `lost:${(e as { reason?: string }).reason}`; reasons.set(k, (reasons.get(k) ?? 0) + 1); });
  c.on('session:lost', (e) => { const k = `session-lost:${String((e as { reason?: unknown }).reason).slice(0, 60)}`; reasons.set(k, (reasons.get(k) ?? 0) + 1); });
  c.on('error', (e) => { const k = `error:${(e as { where: string }).where.slice(0, 40)}:${String((e as { error: Error }).error?.message).slice(0, 80)}`; reasons.set(k, (reasons.get(k) ?? 0) + 1); });
  clusters.push(c);
}
const t0 = Date.now();
const cpu0 = process.cpuUsage();
await Promise.all(clusters.map((c) => c.start()));
console.log(`started in ${Date.now() - t0} ms`);
const even = tasks / nodes;
for (let s = 0; s < seconds; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  const total = owned.reduce((a, b) => a + b, 0);
  const min = Math.min(...owned), max = Math.max(...owned);
  const within = min >= even * 0.85 && max <= even * 1.15;
  const cpu = process.cpuUsage(cpu0);
  console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s owned ${total} min ${min} max ${max} ${within && total === tasks ? 'SPREAD' : ''} acq ${acquired} rel ${released} cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)}s`);
}
console.log([...reasons].map(([k, v]) => `${v} ${k}`).join('\n'));
await Promise.allSettled(clusters.map((c) => c.close()));
await Promise.allSettled(stores.map((s) => s.close()));
process.exit(0);
