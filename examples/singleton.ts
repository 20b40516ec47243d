/**
 * A singleton task: run this file in several terminals; each tick of `sync-orders` runs in exactly one
 * of them, and when you stop (Ctrl-C) or kill the one that owns it, another takes over and continues
 * from the last checkpoint.
 *
 *   npx tsx examples/singleton.ts                      # SQLite file ./baton-example.db
 *   npx tsx examples/singleton.ts sqlite:/tmp/other.db # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example' });

cluster.task<{ cursor: number }>('sync-orders', { every: '2s' }, async (ctx) => {
  const { cursor } = (await ctx.checkpoint.get()) ?? { cursor: 0 };
  ctx.log.info({ cursor }, 'pulling orders');
  // Real work honours ctx.signal: it aborts when this node loses the task or shuts down.
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (ctx.signal.aborted) return;
  // Fenced: refused (NotOwnerError) if another node has taken the task over meanwhile.
  await ctx.checkpoint.commit({ cursor: cursor + 10 });
  console.log(`${cluster.node.id} ran tick ${ctx.tick.toISOString()} (cursor ${cursor} → ${cursor + 10})`);
});

cluster.task('nightly-report', { cron: '0 30 2 * * *', timezone: 'Europe/Paris' }, async (ctx) => {
  console.log(`${cluster.node.id} builds the report for ${ctx.tick.toISOString()}`);
});

cluster.on('owner:acquired', ({ task }) => console.log(`${cluster.node.id} now owns ${task}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // close() hands every task over at once; a standby takes it within ~100 ms.
    void cluster.close().then(() => process.exit(0));
  });
}

await cluster.start();
console.log(`${cluster.node.id} joined cluster "${cluster.name}" on ${store}`);
console.log(await cluster.status());
