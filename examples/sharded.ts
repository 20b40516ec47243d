/**
 * Mode `sharded`: the work is split into shards (here one per market), spread evenly over the nodes by
 * rendezvous hashing and rebalanced when nodes join or leave. Each shard is owned and fenced on its own,
 * with its own checkpoint: a shard moved to another node resumes where it stopped.
 *
 *   npx tsx examples/sharded.ts            # in two or three terminals
 *   npx tsx examples/sharded.ts postgres://localhost/test   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-sharded' });

const markets = ['eu', 'us', 'apac', 'latam', 'mea', 'anz'];
cluster.task<number>('import-prices', { every: '2s', mode: 'sharded', shards: markets }, async (ctx) => {
  const page = (await ctx.checkpoint.get()) ?? 0;
  console.log(`${cluster.node.id} imports ${ctx.shard?.item} (shard ${ctx.shard?.index}/${ctx.shard?.count}) from page ${page}`);
  await ctx.checkpoint.commit(page + 1);
});
cluster.on('owner:acquired', ({ task }) => console.log(`${cluster.node.id} now owns ${task}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} shares the shards of import-prices`);
