import { createCluster } from '../../src/node/node.js';
import { silentLogger } from '../../src/core/logger.js';
import { MemoryBackend } from '../../src/stores/memory/memory-store.js';
const backend = new MemoryBackend();
const t0 = process.cpuUsage(); const w0 = Date.now();
const cs = [];
for (let i = 0; i < 10; i++) {
  const c = await createCluster({ store: backend.connect('x'), name: 'x', node: { id: `n${i}` }, logger: silentLogger });
  for (let t = 0; t < 10000; t++) c.task(`t${t}`, { every: '24h' }, () => undefined);
  cs.push(c);
}
const t1 = process.cpuUsage(t0);
console.log(`construct 10 nodes x 10k: cpu ${((t1.user + t1.system) / 1e6).toFixed(2)} s wall ${Date.now() - w0} ms heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`);
const t2 = process.cpuUsage();
await Promise.all(cs.map((c) => c.start()));
await new Promise((r) => setTimeout(r, 3000));
const t3 = process.cpuUsage(t2);
console.log(`start+3s: cpu ${((t3.user + t3.system) / 1e6).toFixed(2)} s heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`);
process.exit(0);
