/**
 * One node process of the multi-process modes test: declares a task in every placement mode on a 1 s
 * interval and prints what it does as JSON lines (runs, enqueued and acknowledged items). Run with
 * `node --import tsx test/helpers/modes-node.ts URL CLUSTER NODE_ID`; SIGTERM closes it cleanly.
 */
import { createCluster, type ItemContext, type ProducerContext, type TaskContext } from '../../src/index.js';
import { sleep, systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';

const [url, name, id] = process.argv.slice(2) as [string, string, string];
const say = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...message, node: id, at: Date.now() })}\n`);
};

const cluster = await createCluster({ store: url, name, node: { id }, ttl: '3s', logger: silentLogger });
const run = async (ctx: TaskContext) => {
  say({ type: 'run', unit: ctx.unit, tick: ctx.tick.getTime(), token: ctx.token.toString() });
  await sleep(systemClock, 100, ctx.signal);
};
cluster.task('single', { every: '1s' }, run);
cluster.task('pref', { every: '1s', mode: 'preferred', prefer: { node: 'n1' }, failbackAfter: '2s' }, run);
cluster.task('mux', { every: '1s', mode: 'mutex' }, run);
cluster.task('rr', { every: '1s', mode: 'round-robin' }, run);
cluster.task('bc', { every: '1s', mode: 'broadcast' }, run);
cluster.task('sh', { every: '1s', mode: 'sharded', shards: 4 }, run);
cluster.task('dq', { every: '1s', mode: 'dispatch', queue: { visibilityTimeout: '2s', workers: 2 } }, {
  produce: async (ctx: ProducerContext<{ i: number }>) => {
    for (let i = 0; i < 3; i++) {
      const item = `${ctx.tick.getTime()}-${i}`;
      if (await ctx.enqueue({ i }, { id: item })) say({ type: 'enqueued', id: item });
    }
  },
  consume: async (item: ItemContext<{ i: number }>) => {
    say({ type: 'consumed', id: item.id, attempt: item.attempt });
    await sleep(systemClock, 150, item.signal);
  },
});
cluster.on('item:finished', (e) => say({ type: 'item', id: e.id, outcome: e.outcome }));
cluster.on('error', (e) => void process.stderr.write(`${id}: ${e.where}: ${e.error.message}\n`));
process.once('SIGTERM', () => {
  void cluster.close().then(() => {
    say({ type: 'closed' });
    process.exit(0);
  });
});
await cluster.start();
say({ type: 'ready', pid: process.pid });
