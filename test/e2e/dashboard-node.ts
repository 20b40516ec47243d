/**
 * One node process of the dashboard's browser test: three tasks every second (`sync` fails on every
 * fourth tick, so the page has failures to show), `export` every hour that prints (as an agent's command
 * would: the run's output is what the page shows) and a label carrying markup the page must not render.
 * With a fourth argument N it declares N tasks `bulk-0000`… every minute instead (the page's scale test).
 * Run with `node --import tsx test/e2e/dashboard-node.ts URL CLUSTER NODE_ID [N]`; prints one JSON line
 * `{ "type": "ready", "node", "pid" }` once started; SIGTERM closes it cleanly.
 */
import { createCluster, type TaskContext } from '../../src/index.js';
import { sleep, systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';

const [url, name, id, bulk] = process.argv.slice(2) as [string, string, string, string | undefined];

// scanEvery short: a SIGKILLed owner's session is dropped (SQLite sees its pid gone) and its tasks taken within ~0.5 s.
const cluster = await createCluster({
  store: url,
  name,
  node: { id, labels: { zone: id === 'node-a' ? 'eu-1' : 'eu-2', note: '<img src=x onerror="window.__xss=1">' } },
  ttl: '3s',
  scanEvery: '250ms',
  logger: silentLogger,
});
const work = (ms: number) => async (ctx: TaskContext) => {
  await sleep(systemClock, ms, ctx.signal);
};
if (bulk !== undefined) {
  for (let i = 0; i < Number(bulk); i++) cluster.task(`bulk-${String(i).padStart(4, '0')}`, { every: '1m' }, work(5));
} else {
  cluster.task('report', { every: '1s' }, work(120));
  cluster.task('cleanup', { every: '1s' }, work(40));
  cluster.task('sync', { every: '1s' }, async (ctx) => {
    await sleep(systemClock, 200, ctx.signal);
    if ((ctx.tick.getTime() / 1000) % 4 === 0) throw new Error('upstream answered 503 <retry later>');
  });
  cluster.task('export', { every: '1h' }, async (ctx) => {
    const stdout = `exported 42 rows for tick ${ctx.tick.toISOString()}\n`;
    ctx.recordOutput({ exitCode: 0, signal: null, stdout, stderr: '', stdoutBytes: stdout.length, stderrBytes: 0 });
  });
}
cluster.on('error', (e) => void process.stderr.write(`${id}: ${e.where}: ${e.error.message}\n`));
process.once('SIGTERM', () => {
  void cluster.close().then(() => process.exit(0));
});
await cluster.start();
process.stdout.write(`${JSON.stringify({ type: 'ready', node: id, pid: process.pid })}\n`);
