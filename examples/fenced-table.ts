/**
 * Fencing your own PostgreSQL table with baton's token, so that a woken ex-owner (a process that was
 * paused — GC, SIGSTOP, a VM migration — and wakes after another node took the task over) cannot write
 * into it. Two guards, each enough on its own; use both:
 *
 * - `onAcquire`: each new owner writes its token into the table before its first run. From then on the
 *   table refuses any write with a smaller token, even before the new owner's first run writes anything.
 * - `ctx.assertOwner()` right before the write: throws NotOwnerError (and aborts ctx.signal) when this
 *   node cannot prove it still owns the task — checked against its local deadline, no store round trip.
 *
 * The write itself is fenced: `UPDATE … WHERE fencing_token <= $token`. Zero rows updated means a newer
 * owner exists: stop, do not retry.
 *
 *   npx tsx examples/fenced-table.ts                       # baton on SQLite ./baton-example.db
 *   DATABASE_URL=postgres://user@host/db npx tsx examples/fenced-table.ts sqlite:/tmp/other.db
 */
import pg from 'pg';
import { createCluster, NotOwnerError } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const db = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', max: 2 });
const table = process.env.FENCED_TABLE ?? 'baton_example_export';

// One row: what the export has done, and the greatest token that ever wrote it.
await db.query(`CREATE TABLE IF NOT EXISTS ${table} (id int PRIMARY KEY, fencing_token bigint NOT NULL, exported int NOT NULL)`);
await db.query(`INSERT INTO ${table} VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING`);

const cluster = await createCluster({ store, name: 'fenced-example' });

cluster.task<{ batch: number }>('export-orders', {
  every: '2s',
  // Runs once per new ownership, before the first run under it.
  onAcquire: async (ctx) => {
    const { rowCount } = await db.query(`UPDATE ${table} SET fencing_token = $1 WHERE id = 1 AND fencing_token <= $1`, [ctx.token.toString()]);
    // 0 rows: a newer owner already fenced the table; baton will find out it lost the task too.
    if (rowCount === 0) throw new NotOwnerError(`export-orders: token ${ctx.token} is stale for ${table}`);
    console.log(`${cluster.node.id} fenced ${table} with token ${ctx.token}`);
  },
}, async (ctx) => {
  const { batch } = (await ctx.checkpoint.get()) ?? { batch: 0 };
  // Real work, honouring ctx.signal.
  await new Promise((resolve) => setTimeout(resolve, 200));
  // Right before the side effect: throws NotOwnerError if this node may have lost the task meanwhile.
  ctx.assertOwner();
  const { rowCount } = await db.query(
    `UPDATE ${table} SET exported = $2, fencing_token = $1 WHERE id = 1 AND fencing_token <= $1`,
    [ctx.token.toString(), batch + 1],
  );
  if (rowCount === 0) throw new NotOwnerError(`export-orders: token ${ctx.token} was superseded; batch ${batch + 1} not written`);
  await ctx.checkpoint.commit({ batch: batch + 1 });
  console.log(`${cluster.node.id} exported batch ${batch + 1} with token ${ctx.token} (tick ${ctx.tick.toISOString()})`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cluster
      .close()
      .then(() => db.end())
      .then(() => process.exit(0));
  });
}

await cluster.start();
console.log(`${cluster.node.id} joined cluster "${cluster.name}" on ${store}`);
