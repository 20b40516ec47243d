/**
 * Task options of the singleton mode: run this file in one or several terminals. Each task shows one
 * option; the last lines trigger, pause and resume a task cluster-wide from whichever node you are on.
 * docs/scheduling.md describes every option.
 *
 *   npx tsx examples/options.ts                      # SQLite file ./baton-example.db
 *   npx tsx examples/options.ts sqlite:/tmp/other.db # any store URL
 */
import { createCluster } from 'baton-fleet';

const store = process.argv[2] ?? 'sqlite:./baton-example.db';
const cluster = await createCluster({ store, name: 'options-example' });
const say = (text: string) => console.log(`${new Date().toISOString()} ${cluster.node.id} ${text}`);
const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

// Spread: each tick starts up to 3 s after its time, the same delay on every node.
cluster.task('spread', { every: '5s', jitter: '3s' }, (ctx) => say(`spread tick ${ctx.tick.toISOString()} +${ctx.jitterMs}ms jitter`));

// Flaky upstream: retried on the same tick after 200 ms, 400 ms; each attempt may take 1 s at most.
cluster.task('flaky', { every: '10s', retries: 2, retryBackoff: { initial: '200ms', max: '2s' }, timeout: '1s' }, async (ctx) => {
  say(`flaky attempt ${ctx.attempt}`);
  if (ctx.attempt < 3) throw new Error('upstream said 503');
});

// A pipeline: extract → load for the same tick, each on whichever node owns it.
cluster.task('extract', { every: '15s' }, () => say('extract'));
cluster.task('load', { every: '15s', dependsOn: 'extract' }, () => say('load (extract succeeded for this tick)'));

// Slow reports: at most one of the group runs at a time in the whole cluster; late ticks are skipped.
for (const name of ['report-a', 'report-b']) {
  cluster.task(name, { every: '4s', concurrency: 1, concurrencyGroup: 'reports', misfire: 'skip' }, async (ctx) => {
    say(`${name} running (holding the only "reports" slot)`);
    await wait(2500, ctx.signal);
  });
}

// Slower than its interval: ticks that fall during a run are queued (at most 2) instead of skipped.
cluster.task('queued', { every: '2s', overlap: 'queue', overlapLimit: 2 }, async (ctx) => {
  say(`queued tick ${ctx.tick.toISOString()} late by ${ctx.lateMs}ms`);
  await wait(3000, ctx.signal);
});

// Once, 20 s from the first start of the cluster (a fixed time in a real deployment).
cluster.task('once', { at: new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 20_000) }, () => say('once-at ran'));

cluster.on('tick:missed', ({ task, count, reason }) => say(`${task}: ${count} tick(s) missed (${reason})`));
cluster.on('run:finished', ({ task, outcome, attempts }) => {
  if (outcome !== 'succeeded') say(`${task}: ${outcome} after ${attempts ?? 1} attempt(s)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cluster.close().then(() => process.exit(0)));
}

await cluster.start();
say(`joined cluster "${cluster.name}" on ${store}`);

// Control any task from any node, owner or not.
setTimeout(() => void cluster.trigger('extract').then((id) => say(`triggered extract (${id})`)), 3000);
setTimeout(() => void cluster.pause('spread').then(() => say('paused spread cluster-wide')), 8000);
setTimeout(() => void cluster.resume('spread').then(() => say('resumed spread')), 20_000);
