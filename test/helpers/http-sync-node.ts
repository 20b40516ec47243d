/**
 * One node process of the multi-process HTTP sync test: a baton cluster member running the
 * `sync-orders` task (httpSync every 500 ms) and printing what it does as JSON lines (ready, page, run,
 * failed). Run with
 *   node --import tsx test/helpers/http-sync-node.ts STORE_URL CLUSTER NODE_ID API_URL TARGET_URL SUFFIX [zombie]
 * With `zombie`, the handler ignores `ctx.signal` (it stops only on SIGTERM): the worst case of a paused
 * owner whose self-fencing did not stop it, which only the fenced cursor in the target can then stop.
 * SIGTERM closes it cleanly.
 */
import { createCluster } from '../../src/index.js';
import { silentLogger } from '../../src/core/logger.js';
import { httpSync } from '../../src/sync/index.js';
import { OrderSchema, ORDER_COLUMNS } from './http-sync-fixture.js';

const [store, name, id, api, target, suffix, mode] = process.argv.slice(2) as [string, string, string, string, string, string, string | undefined];
const say = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...message, node: id, at: Date.now() })}\n`);
};

const closing = new AbortController();
const sync = httpSync({
  name: 'orders',
  source: {
    url: `${api}/orders`,
    cursor: { kind: 'updatedSince' },
    pageSize: 25,
    maxPagesPerRun: 20,
    timeout: '500ms',
    attempts: 10,
    backoff: { initial: '20ms', max: '200ms' },
    maxRetryAfter: '1s',
    headers: { 'x-node': id },
  },
  schema: OrderSchema,
  target: {
    db: target,
    table: `orders_${suffix}`,
    key: 'id',
    columns: [...ORDER_COLUMNS],
    version: 'updated_at',
    cursorTable: `sync_cursor_${suffix}`,
    rejectsTable: `sync_rejects_${suffix}`,
  },
  onPage: (e) => say({ type: 'page', token: e.token.toString(), page: e.page, cursor: e.cursor, upserted: e.upserted, rejected: e.rejected }),
});

const cluster = await createCluster({ store, name, node: { id }, ttl: '2s', logger: silentLogger });
cluster.task('sync-orders', { every: '500ms' }, async (ctx) => {
  const signal = mode === 'zombie' ? closing.signal : ctx.signal;
  say({ type: 'run', token: ctx.token.toString() });
  try {
    const summary = await sync.run({ ...ctx, signal });
    say({ type: 'ran', token: ctx.token.toString(), stopped: summary.stopped, pages: summary.pages });
  } catch (error) {
    say({ type: 'failed', token: ctx.token.toString(), code: (error as { code?: string }).code, message: (error as Error).message });
    throw error;
  }
});
cluster.on('error', (e) => void process.stderr.write(`${id}: ${e.where}: ${e.error.message}\n`));
process.once('SIGTERM', () => {
  closing.abort(new Error('SIGTERM'));
  void cluster
    .close()
    .then(() => sync.close())
    .then(() => {
      say({ type: 'closed' });
      process.exit(0);
    });
});
await sync.ensureSchema();
await cluster.start();
say({ type: 'ready', pid: process.pid });
