#!/usr/bin/env node
/** The `baton` command. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { BatonError } from '../core/errors.js';
import { openStore } from '../stores/open-store.js';
import { readStatus } from '../monitor/status.js';
import { formatStatus } from './format-status.js';

const program = new Command('baton')
  .description('Make a fleet of identical processes behave like one: singleton tasks, fenced ownership, fast failover.')
  .version('0.1.0');

program
  .command('demo')
  .description('3 node processes on a temporary SQLite file (or --store URL): ticks, a SIGKILLed owner and its takeover, a graceful hand-over')
  .option('--json', 'print only a one-line JSON summary')
  .option('--nodes <n>', 'number of node processes (2-8)', positiveInt(2, 8), 3)
  .option('--act-seconds <s>', 'seconds between the acts', positiveInt(1, 20), 3)
  .option('--store <url>', 'run on this store (e.g. postgres://…) instead of a temporary SQLite file')
  .option('--tasks <n>', 'add n more tasks to show how they spread (summary: "spread")', positiveInt(0, 5000), 0)
  .addOption(new Option('--file <path>', 'keep the SQLite file at this path').hideHelp())
  .addOption(new Option('--cluster <name>', 'cluster name').hideHelp())
  .action(async (opts: { json?: boolean; nodes: number; actSeconds: number; tasks: number; file?: string; store?: string; cluster?: string }) => {
    const { runDemo } = await import('./demo.js');
    const summary = await runDemo({
      json: opts.json === true,
      nodes: opts.nodes,
      actSeconds: opts.actSeconds,
      tasks: opts.tasks,
      ...(opts.file ? { file: opts.file } : {}),
      ...(opts.store ? { store: opts.store } : {}),
      ...(opts.cluster ? { cluster: opts.cluster } : {}),
    });
    if (summary.duplicateTicks > 0) process.exitCode = 1;
  });

program
  .command('status')
  .description('print nodes and tasks of a cluster: owner host:pid, last run, next tick')
  .requiredOption('--store <url>', 'store URL, e.g. sqlite:./baton.db')
  .option('--cluster <name>', 'cluster name', 'default')
  .option('--json', 'print the snapshot as JSON')
  .action(async (opts: { store: string; cluster: string; json?: boolean }) => {
    const store = await openStore(opts.store, { cluster: opts.cluster });
    try {
      const status = await readStatus(store);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
      } else {
        process.stdout.write(`${formatStatus(status, { color: process.stdout.isTTY === true && !process.env.NO_COLOR })}\n`);
      }
    } finally {
      await store.close();
    }
  });

program
  .command('demo-node', { hidden: true })
  .requiredOption('--store <url>')
  .requiredOption('--cluster <name>')
  .requiredOption('--id <id>')
  .requiredOption('--tasks <json>')
  .action(async (opts: { store: string; cluster: string; id: string; tasks: string }) => {
    const { runDemoNode } = await import('./demo-node.js');
    await runDemoNode({ store: opts.store, cluster: opts.cluster, id: opts.id, tasks: JSON.parse(opts.tasks) as never });
  });

function positiveInt(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof BatonError) {
    process.stderr.write(`baton: ${error.message} [${error.code}]\n`);
  } else {
    process.stderr.write(`baton: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
});
