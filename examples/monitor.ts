/**
 * A node with a monitor inside: the dashboard, JSON API, event stream and /metrics of `baton serve`, and
 * alerts sent to a webhook — here a receiver in the same process that checks each request's signature.
 * Run it in two terminals: one monitor decides the alerts (and sends them), both serve the dashboard.
 *
 *   npx tsx examples/monitor.ts                      # SQLite file ./baton-example.db; prints the dashboard URL
 *   npx tsx examples/monitor.ts postgres://…/db      # any store URL
 *
 * Standalone, without a node: `npx baton serve --store sqlite:./baton-example.db --cluster example`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const secret = process.env.BATON_WEBHOOK_SECRET ?? 'example-secret-change-me';

// A webhook receiver: verifies X-Baton-Signature = HMAC-SHA256(secret, `${timestamp}.${body}`).
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString()));
  req.on('end', () => {
    const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${req.headers['x-baton-timestamp']}.${body}`).digest('hex')}`);
    const given = Buffer.from(String(req.headers['x-baton-signature'] ?? ''));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401).end();
      return;
    }
    const { status, alert } = JSON.parse(body) as { status: string; alert: { id: string; message: string } };
    console.log(`webhook: alert ${status} ${alert.id}: ${alert.message}`);
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`;

const cluster = await createCluster({ store, name: 'example' });
cluster.task('sync-orders', { every: '2s' }, async () => {
  await new Promise((resolve) => setTimeout(resolve, 100));
});
cluster.task('flaky-export', { every: '1s' }, () => {
  throw new Error('the export API answered 503');
});
await cluster.start();

const monitor = await cluster.monitor({
  listen: process.env.BATON_LISTEN ?? '127.0.0.1:0',
  alerts: { consecutiveFailures: 3, noOwnerFor: '10s', webhook: { url: webhook, secret } },
});
console.log(`${cluster.node.id} joined; dashboard: ${monitor.url}?token=${monitor.token}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // close() closes the monitor too (and hands its alerting over to the other one).
    void cluster.close().then(() => receiver.close(() => process.exit(0)));
  });
}
