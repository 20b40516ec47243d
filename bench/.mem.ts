import { createCluster } from '../src/node/node.js';
import { silentLogger } from '../src/core/logger.js';
const c = await createCluster({ store: 'memory:', name: `m`, node: { id: 'p' }, logger: silentLogger });
await c.start();
const store = c.store;
const { id } = await store.openSession({ id: 'x', host: 'h', pid: 1, version: '0', labels: {}, startedAt: 0, tasks: {} } as never, 30000);
const N = 30000;
for (let r = 0; r < 1; r++) {
  let u0 = process.cpuUsage();
  for (let i = 0; i < N; i++) { const h = await c.lock('x', { wait: false }); await h.release(); }
  let u = process.cpuUsage(u0); const a = ((u.user + u.system) / N).toFixed(1);
  u0 = process.cpuUsage();
  for (let i = 0; i < N; i++) { const t = (await store.tryAcquire('lock/y', id)) as { token: bigint }; await store.release('lock/y', t.token); }
  u = process.cpuUsage(u0); const b = ((u.user + u.system) / N).toFixed(1);
  console.log('cluster.lock', a, 'us cpu/op; store', b, 'us cpu/op');
}
await store.closeSession(id);
await c.close();
