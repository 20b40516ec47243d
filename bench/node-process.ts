/**
 * Entry of every child process of the bench: `node --import tsx bench/node-process.ts '<json config>'`.
 * `kind` picks what the child runs: a baton node (public API only, like a user's service) or one of the
 * peers' processes (bench/peers/*). It reports as JSON lines on stdout and exits on SIGTERM after a clean
 * shutdown (the graceful path), or dies on SIGKILL.
 */
import type { Say } from './util.js';

export interface BatonChildConfig {
  readonly kind: 'baton';
  readonly id: string;
  readonly store: string;
  readonly cluster: string;
  /**
   * The tasks, listed, or generated (`<prefix>0` … `<prefix><count − 1>`): 10,000 names do not fit in
   * argv (128 KiB per argument on Linux).
   */
  readonly tasks: readonly { readonly name: string; readonly every: string }[] | GeneratedTasks;
  readonly ttl?: string;
  readonly rebalanceAfter?: string;
  /**
   * `SIGUSR2`: print `ready` once the cluster is created and its tasks declared, and start it only on
   * SIGUSR2 (then print `started`), so the parent starts it together with its own nodes (a cold start).
   */
  readonly startOn?: 'SIGUSR2';
  /**
   * Hosts this many nodes (`<id>-0` … `<id>-<count − 1>`) instead of one, `perHandle` of them sharing a
   * store handle (the scale bench's nodes beyond what its own process can carry). Such a child reports
   * only `ready`, `started` and `closed`: per-task lines of thousands of tasks would drown the parent.
   */
  readonly nodes?: { readonly count: number; readonly perHandle: number };
}

export interface GeneratedTasks {
  readonly prefix: string;
  readonly count: number;
  readonly every: string;
}

function taskList(tasks: BatonChildConfig['tasks']): readonly { readonly name: string; readonly every: string }[] {
  if (Array.isArray(tasks)) return tasks;
  const g = tasks as GeneratedTasks;
  return Array.from({ length: g.count }, (_, i) => ({ name: `${g.prefix}${i}`, every: g.every }));
}

const config = JSON.parse(process.argv[2] ?? '{}') as { kind: string; id: string };
const say: Say = (message) => process.stdout.write(`${JSON.stringify({ ...message, node: config.id, at: Date.now() })}\n`);

// A child must never outlive the bench: exit when the parent is gone (stdout closed).
process.stdout.on('error', () => process.exit(0));
const orphanCheck = setInterval(() => {
  if (process.ppid === 1) process.exit(0);
}, 1000);
orphanCheck.unref();

async function runBaton(c: BatonChildConfig): Promise<void> {
  // Imported here, not at the top: peers' children must not load baton's sources at all.
  const { createCluster } = await import('../src/node/node.js');
  const { silentLogger } = await import('../src/core/logger.js');
  const cluster = await createCluster({
    store: c.store,
    name: c.cluster,
    node: { id: c.id },
    logger: silentLogger,
    ...(c.ttl ? { ttl: c.ttl } : {}),
    ...(c.rebalanceAfter ? { rebalanceAfter: c.rebalanceAfter } : {}),
  });
  for (const task of taskList(c.tasks)) {
    cluster.task(task.name, { every: task.every }, (ctx) => {
      // Lateness as the handler sees it: now − the tick (ctx.lateMs is taken before the tick's claim round trip).
      say({ type: 'run', task: ctx.task, tick: ctx.tick.getTime(), lateMs: Date.now() - ctx.tick.getTime(), ctxLateMs: ctx.lateMs, token: ctx.token.toString() });
    });
  }
  cluster.on('owner:acquired', (e) => say({ type: 'owner', task: e.unit, token: e.token.toString() }));
  cluster.on('owner:released', (e) => say({ type: 'released', task: e.unit, reason: e.reason }));
  cluster.on('owner:lost', (e) => say({ type: 'lost', task: e.unit, reason: e.reason }));
  cluster.on('tick:missed', (e) => say({ type: 'missed', task: e.unit, count: e.count, from: e.from, to: e.to, reason: e.reason }));
  cluster.on('session:lost', (e) => say({ type: 'session-lost', reason: e.reason }));
  const shutdown = () => {
    cluster.close().then(
      () => {
        say({ type: 'closed' });
        process.exit(0);
      },
      (error: unknown) => {
        process.stderr.write(`${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  startWhenAsked(c, () => cluster.start(), shutdown);
}

/**
 * With `startOn: 'SIGUSR2'`, prints `ready` and starts on SIGUSR2 (then prints `started`); otherwise
 * starts now and prints `ready`.
 */
function startWhenAsked(c: BatonChildConfig, start: () => Promise<unknown>, shutdown: () => void): void {
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  if (c.startOn === 'SIGUSR2') {
    // Listening before `ready`: SIGUSR2's default action would end the process. Until then nothing else
    // keeps the event loop alive (the cluster has no timers before start), so `hold` does.
    const hold = setInterval(() => undefined, 60_000);
    process.once('SIGUSR2', () => {
      clearInterval(hold);
      start().then(
        () => say({ type: 'started' }),
        (error: unknown) => {
          process.stderr.write(`${String(error)}\n`);
          process.exit(1);
        },
      );
    });
    say({ type: 'ready', pid: process.pid });
    return;
  }
  start().then(
    () => say({ type: 'ready', pid: process.pid }),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
}

/** `c.nodes.count` nodes of the same tasks in this process, on shared store handles (see {@link BatonChildConfig.nodes}). */
async function runBatonNodes(c: BatonChildConfig, nodes: NonNullable<BatonChildConfig['nodes']>): Promise<void> {
  const { createCluster } = await import('../src/node/node.js');
  const { openStore } = await import('../src/stores/open-store.js');
  const { silentLogger } = await import('../src/core/logger.js');
  const tasks = taskList(c.tasks);
  const handles: Awaited<ReturnType<typeof openStore>>[] = [];
  const clusters: Awaited<ReturnType<typeof createCluster>>[] = [];
  for (let i = 0; i < nodes.count; i++) {
    if (i % nodes.perHandle === 0) handles.push(await openStore(c.store, { cluster: c.cluster }));
    const cluster = await createCluster({
      store: handles[handles.length - 1] as (typeof handles)[number],
      name: c.cluster,
      node: { id: `${c.id}-${i}` },
      logger: silentLogger,
      ...(c.ttl ? { ttl: c.ttl } : {}),
      ...(c.rebalanceAfter ? { rebalanceAfter: c.rebalanceAfter } : {}),
    });
    for (const task of tasks) cluster.task(task.name, { every: task.every }, () => undefined);
    cluster.on('session:lost', (e) => say({ type: 'session-lost', reason: e.reason }));
    clusters.push(cluster);
  }
  const shutdown = () => {
    Promise.allSettled(clusters.map((cluster) => cluster.close()))
      .then(() => Promise.allSettled(handles.map((h) => h.close())))
      .then(() => {
        say({ type: 'closed' });
        process.exit(0);
      });
  };
  startWhenAsked(c, () => Promise.all(clusters.map((cluster) => cluster.start())), shutdown);
}

async function main(): Promise<void> {
  switch (config.kind) {
    case 'baton': {
      const c = config as unknown as BatonChildConfig;
      return c.nodes ? runBatonNodes(c, c.nodes) : runBaton(c);
    }
    case 'etcd-election':
      return (await import('./peers/etcd-election.js')).runElectionChild(config as never, say);
    case 'zk-election':
      return (await import('./peers/zk-election.js')).runZkElectionChild(config as never, say);
    case 'pg-advisory':
      return (await import('./peers/pg-advisory.js')).runAdvisoryChild(config as never, say);
    case 'mysql-get-lock-leader':
      return (await import('./peers/mysql-get-lock-leader.js')).runGetLockLeaderChild(config as never, say);
    case 'bullmq-worker':
      return (await import('./peers/bullmq.js')).runBullmqChild(config as never, say);
    case 'pgboss':
      return (await import('./peers/pgboss.js')).runPgBossChild(config as never, say);
    case 'zombie':
      return (await import('./zombie.js')).runZombieChild(config as never, say);
    default:
      throw new Error(`node-process: unknown kind ${JSON.stringify(config.kind)}`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`node-process ${config.id}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
