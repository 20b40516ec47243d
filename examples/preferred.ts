/**
 * Mode `preferred`: the task runs on the best-ranked live node — here any node of region `eu`, else
 * anyone — and fails back to `eu` once an `eu` node has been up for `failbackAfter` (so a flapping
 * primary does not bounce it). Run one terminal per region, stop the eu one, start it again:
 *
 *   BATON_REGION=eu npx tsx examples/preferred.ts
 *   BATON_REGION=us npx tsx examples/preferred.ts      # takes over only while no eu node is alive
 *   npx tsx examples/preferred.ts postgres://localhost/test   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const region = process.env.BATON_REGION ?? 'eu';
const cluster = await createCluster({ store, name: 'example-preferred', node: { labels: { region } } });

cluster.task('settle-payments', { every: '2s', mode: 'preferred', prefer: { region: 'eu' }, failbackAfter: '10s' }, (ctx) => {
  console.log(`${cluster.node.id} (region ${region}) settles tick ${ctx.tick.toISOString()}`);
});
cluster.on('owner:acquired', ({ task }) => console.log(`${cluster.node.id} (region ${region}) now owns ${task}`));
cluster.on('owner:released', ({ task, reason }) => console.log(`${cluster.node.id} released ${task} (${reason})`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} joined in region ${region}`);
