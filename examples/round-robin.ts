/**
 * Mode `round-robin`: the nodes take turns, tick by tick, over the live members (sorted by node id);
 * a node that left is skipped, a node that joins gets its turn. Run it in three terminals:
 *
 *   npx tsx examples/round-robin.ts
 *   npx tsx examples/round-robin.ts postgres://localhost/test   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-round-robin' });

cluster.task('probe-upstream', { every: '2s', mode: 'round-robin' }, (ctx) => {
  console.log(`${cluster.node.id}'s turn: tick ${ctx.tick.toISOString()}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} takes turns on probe-upstream`);
