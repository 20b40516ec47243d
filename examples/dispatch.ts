/**
 * Mode `dispatch`: "the leader reads failed records into a queue, every machine consumes". One node
 * runs `produce` on schedule and enqueues work items (fenced by its token; an `id` makes it idempotent);
 * every node `consume`s them with a visibility timeout. A failed item comes back after a backoff; after
 * `maxAttempts` it goes to the dead letters (`cluster.deadLetters()`), never lost.
 *
 *   npx tsx examples/dispatch.ts           # in two or three terminals
 *   npx tsx examples/dispatch.ts redis://127.0.0.1:6379   # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'example-dispatch' });

interface Retry {
  readonly orderId: number;
}

cluster.task<Retry>(
  'retry-failed-orders',
  { every: '5s', mode: 'dispatch', queue: { visibilityTimeout: '30s', maxAttempts: 3, backoff: { initial: '1s', max: '10s' }, workers: 2 } },
  {
    produce: async (ctx) => {
      // A real producer would select failed rows; the id keeps an order queued once while it waits.
      const failed = [1, 2, 3, 4, 5].map((n) => ({ orderId: Math.floor(ctx.tick.getTime() / 5000) * 10 + n }));
      for (const order of failed) await ctx.enqueue(order, { id: `order-${order.orderId}` });
      console.log(`${cluster.node.id} queued ${failed.length} orders`);
    },
    consume: async (item) => {
      if (item.payload.orderId % 7 === 0 && item.attempt < 3) throw new Error('payment gateway timeout');
      console.log(`${cluster.node.id} retried order ${item.payload.orderId} (delivery ${item.attempt})`);
    },
  },
);
cluster.on('item:finished', ({ id, outcome }) => {
  if (outcome !== 'succeeded') console.log(`${cluster.node.id}: ${id} ${outcome}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.close().then(() => process.exit(0)));
await cluster.start();
console.log(`${cluster.node.id} consumes retry-failed-orders`);
