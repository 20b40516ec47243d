/**
 * One node of `baton demo`, run as its own process. It uses only the public API, like a user's service
 * would, and reports what happens as JSON lines on stdout for the demo to display and measure.
 */
import { createCluster } from '../node/node.js';
import { silentLogger } from '../core/logger.js';

export interface DemoNodeOptions {
  readonly store: string;
  readonly cluster: string;
  readonly id: string;
  readonly tasks: readonly DemoTask[];
}

export interface DemoTask {
  readonly name: string;
  readonly every: string;
  /** Simulated work per run, in ms. */
  readonly workMs: number;
}

/** The messages a demo node prints, one JSON object per line. */
export type DemoMessage =
  | { type: 'ready'; node: string; pid: number; at: number }
  | { type: 'owner'; node: string; task: string; token: string; at: number }
  | { type: 'released'; node: string; task: string; reason: string; at: number }
  | { type: 'lost'; node: string; task: string; reason: string; at: number }
  | { type: 'run'; node: string; task: string; tick: number; lateMs: number; checkpoint: number; at: number }
  | { type: 'done'; node: string; task: string; tick: number; outcome: string; at: number }
  | { type: 'missed'; node: string; task: string; count: number; reason: string; at: number }
  | { type: 'closed'; node: string; at: number };

function say(message: DemoMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

export async function runDemoNode(options: DemoNodeOptions): Promise<void> {
  const node = options.id;
  const cluster = await createCluster({ store: options.store, name: options.cluster, node: { id: node }, logger: silentLogger });
  for (const task of options.tasks) {
    cluster.task<number>(task.name, { every: task.every }, async (ctx) => {
      // Resume from the last committed checkpoint: a new owner continues where the old one stopped.
      const done = (await ctx.checkpoint.get()) ?? 0;
      say({ type: 'run', node, task: ctx.task, tick: ctx.tick.getTime(), lateMs: ctx.lateMs, checkpoint: done, at: Date.now() });
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        };
        const timer = setTimeout(() => {
          ctx.signal.removeEventListener('abort', onAbort);
          resolve();
        }, task.workMs);
        ctx.signal.addEventListener('abort', onAbort, { once: true });
      });
      await ctx.checkpoint.commit(done + 1);
    });
  }
  cluster.on('owner:acquired', (e) => say({ type: 'owner', node, task: e.unit, token: e.token.toString(), at: Date.now() }));
  cluster.on('owner:released', (e) => say({ type: 'released', node, task: e.unit, reason: e.reason, at: Date.now() }));
  cluster.on('owner:lost', (e) => say({ type: 'lost', node, task: e.unit, reason: e.reason, at: Date.now() }));
  cluster.on('run:finished', (e) => say({ type: 'done', node, task: e.unit, tick: e.tick, outcome: e.outcome, at: Date.now() }));
  cluster.on('tick:missed', (e) => say({ type: 'missed', node, task: e.unit, count: e.count, reason: e.reason, at: Date.now() }));
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    cluster.close().then(
      () => {
        say({ type: 'closed', node, at: Date.now() });
        process.exit(0);
      },
      (error: unknown) => {
        process.stderr.write(`${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  // The demo reads our stdout; if it is gone (killed), the pipe breaks: stop quietly, nobody is listening.
  process.stdout.on('error', shutdown);
  await cluster.start();
  say({ type: 'ready', node, pid: process.pid, at: Date.now() });
}
