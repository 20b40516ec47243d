/**
 * Mode `broadcast`: every node runs every tick — for per-process work such as refreshing a local cache.
 * Each node's share is its own unit (`refresh-cache@<node>`) with its own run history and checkpoint.
 *
 *   npx tsx examples/broadcast.ts
 *   npx tsx examples/broadcast.ts redis://127.0.0.1:6379   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-broadcast' });

cluster.task('refresh-cache', { every: '2s', mode: 'broadcast' }, (ctx) => {
  console.log(`${ctx.unit} refreshes its cache for tick ${ctx.tick.toISOString()}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} runs every tick of refresh-cache`);
