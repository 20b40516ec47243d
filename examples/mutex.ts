/**
 * Mode `mutex`: nobody owns the task between ticks; at each tick every node competes and the first to
 * acquire it runs the tick (once, fenced). A node that dies between ticks costs nothing: it held nothing.
 * The checkpoint goes from winner to winner. Run it in several terminals:
 *
 *   npx tsx examples/mutex.ts
 *   npx tsx examples/mutex.ts redis://127.0.0.1:6379   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-mutex' });

cluster.task<number>('purge-expired', { every: '2s', mode: 'mutex' }, async (ctx) => {
  const purged = (await ctx.checkpoint.get()) ?? 0;
  console.log(`${cluster.node.id} won tick ${ctx.tick.toISOString()} (token ${ctx.token}); ${purged} purged so far`);
  await ctx.checkpoint.commit(purged + 1);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} competes for each tick of purge-expired`);
