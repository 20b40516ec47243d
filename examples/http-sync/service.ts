/**
 * One node of the http-sync example: a service that pulls new and changed orders from an HTTP API into
 * a database every 2 seconds. Run it in as many processes as you like: exactly one of them syncs at a
 * time, and when it dies another one resumes from the last committed page.
 *
 *   npx tsx examples/http-sync/fixture-server.ts                # a local orders API (prints its URL)
 *   npx tsx examples/http-sync/service.ts --api http://127.0.0.1:PORT [--store URL] [--target URL] [--node ID]
 *
 * Defaults: store `sqlite:./baton-http-sync.db`, target `sqlite:./orders.db`. `npm run example:http-sync`
 * runs the whole scene (the API, 3 of these, a SIGKILL) by itself: see run.ts.
 */
import { parseArgs } from 'node:util';
import { createCluster } from 'baton-fleet';
import { httpSync } from 'baton-fleet/sync';
import { createOrdersTable, Order, ORDER_COLUMNS } from './orders.js';

const { values: args } = parseArgs({
  options: {
    api: { type: 'string' },
    store: { type: 'string', default: 'sqlite:./baton-http-sync.db' },
    target: { type: 'string', default: 'sqlite:./orders.db' },
    node: { type: 'string' },
  },
});
if (!args.api) {
  console.error('usage: service.ts --api http://127.0.0.1:PORT [--store URL] [--target URL] [--node ID]');
  process.exit(2);
}

const cluster = await createCluster({ store: args.store, name: 'http-sync-example', ...(args.node ? { node: { id: args.node } } : {}), ttl: '3s' });
const id = cluster.node.id;

await createOrdersTable(args.target, 'orders');
const sync = httpSync({
  source: {
    url: `${args.api}/orders`,
    // (updated_at, id): records sharing a timestamp are never skipped when a page ends between them.
    cursor: { kind: 'updatedSince', field: 'updated_at', idField: 'id' },
    pageSize: 50,
    maxPagesPerRun: 20,
    timeout: '1s',
    attempts: 8,
    backoff: { initial: '50ms', max: '1s' },
    maxRetryAfter: '2s',
    minInterval: '5ms',
    headers: { 'x-node': id },
  },
  schema: Order,
  target: {
    db: args.target,
    table: 'orders',
    key: 'id',
    columns: [...ORDER_COLUMNS],
    // A replayed (stale) page can never roll a row back to an older version.
    version: 'updated_at',
  },
  onPage: (e) =>
    console.log(
      `${id} page ${e.page} (token ${e.token}): ${e.fetched} fetched, ${e.upserted} upserted, ${e.rejected} rejected, ` +
        `cursor ${JSON.stringify(e.cursor)}, lag ${e.lagMs ?? '?'} ms${e.attempts > 1 ? `, ${e.attempts} attempts` : ''}`,
    ),
});
await sync.ensureSchema(); // fail fast on a missing table or column, before joining the cluster

cluster.task('sync-orders', { every: '2s' }, sync);
cluster.on('owner:acquired', ({ task }) => console.log(`${id} now owns ${task}`));
cluster.on('run:finished', (e) => {
  if (e.outcome !== 'succeeded') console.log(`${id} run ${e.outcome}: ${e.error?.message ?? ''}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // close() aborts the run between pages and hands the task over at once.
    void cluster
      .close()
      .then(() => sync.close())
      .then(() => process.exit(0));
  });
}

await cluster.start();
console.log(`${id} joined cluster "${cluster.name}" (pid ${process.pid}), syncing ${args.api} into ${args.target.replace(/\/\/[^@/]*@/, '//***@')}`);
