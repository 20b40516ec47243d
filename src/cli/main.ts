#!/usr/bin/env node
/** The `baton` command. */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { sleep, systemClock } from '../core/clock.js';
import { BatonError } from '../core/errors.js';
import { defaultLogger } from '../core/logger.js';
import { readStatus } from '../monitor/status.js';
import { formatStatus, type FormattableStatus } from './format-status.js';
import { readActiveAlerts } from '../monitor/alerting.js';
import type { Store } from '../stores/contract.js';
import { registerAgent } from './agent.js';
import { registerRelay, relayProviders } from './relay.js';
import { registerServe } from './serve.js';
import { registerConsole } from './console.js';
import { openExistingCluster } from './existing-cluster.js';

const program = new Command('baton')
  .description('Make a fleet of identical processes behave like one: singleton tasks, fenced ownership, fast failover.')
  .version((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);

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
    // Ctrl-C (sent to the demo and its nodes alike) stops the demo cleanly: nodes closed, temporary files removed.
    const interrupt = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => interrupt.abort(signal);
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      const summary = await runDemo({
        json: opts.json === true,
        nodes: opts.nodes,
        actSeconds: opts.actSeconds,
        tasks: opts.tasks,
        signal: interrupt.signal,
        ...(opts.file ? { file: opts.file } : {}),
        ...(opts.store ? { store: opts.store } : {}),
        ...(opts.cluster ? { cluster: opts.cluster } : {}),
      });
      if (summary.duplicateTicks > 0) process.exitCode = 1;
    } catch (error) {
      if (!interrupt.signal.aborted) throw error;
      process.stderr.write(`baton demo: interrupted (${String(interrupt.signal.reason)}); nodes stopped, temporary files removed\n`);
      process.exitCode = interrupt.signal.reason === 'SIGINT' ? 130 : 143;
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    }
  });

program
  .command('status')
  .description('print nodes and tasks of a cluster: owner host:pid, last run, next tick')
  .requiredOption('--store <url>', 'store URL, e.g. sqlite:./baton.db')
  .option('--cluster <name>', 'cluster name', 'default')
  .option('--json', 'print the snapshot as JSON (with --watch: one JSON line per snapshot)')
  .addOption(
    new Option('--watch [seconds]', 're-read and redraw every n seconds until Ctrl-C').preset('2').argParser((value: string): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0.1 || n > 3600) throw new InvalidArgumentError('expected seconds from 0.1 to 3600');
      return n;
    }),
  )
  .option('--relay <file>', 'also show this relay topology: outbox depth and age, held, parked, queued, dead letters (repeatable)', (value: string, all: string[]) => [...all, value], [])
  .addOption(new Option('--relay-amqp <url>', 'broker of the relays shown').env('BATON_RELAY_AMQP'))
  .action(async (opts: { store: string; cluster: string; json?: boolean; watch?: number; relay: string[]; relayAmqp?: string }) => {
    const tty = process.stdout.isTTY === true;
    const render = (status: FormattableStatus): string =>
      opts.json
        ? JSON.stringify(status, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
        : formatStatus(status, { color: tty && !process.env.NO_COLOR });
    // Installed before the store opens, so Ctrl-C at any point stops the watch and still closes the store.
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    if (opts.watch !== undefined) {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }
    try {
      const relays = opts.relay.length > 0 ? await watchRelays(opts.relay, opts.relayAmqp) : undefined;
      const store = await openExistingCluster(opts.store, opts.cluster);
      const read = async (): Promise<FormattableStatus> => {
        const [status] = await Promise.all([readWithAlerts(store), relays?.refresh()]);
        return relays ? { ...status, relays: relays.views } : status;
      };
      try {
        if (opts.watch === undefined) {
          process.stdout.write(`${render(await read())}\n`);
          return;
        }
        const intervalMs = Math.round(opts.watch * 1000);
        for (let first = true; !stop.signal.aborted; first = false) {
          let frame: string;
          try {
            frame = render(await read());
          } catch (error) {
            // A watch outlives a store hiccup: say so and keep polling (on stderr with --json, keeping stdout JSON).
            const message = `baton: ${error instanceof Error ? error.message : String(error)} (retrying every ${opts.watch}s)`;
            if (opts.json) {
              process.stderr.write(`${message}\n`);
              await sleep(systemClock, intervalMs, stop.signal).catch(() => undefined);
              continue;
            }
            frame = message;
          }
          if (stop.signal.aborted) break;
          if (opts.json) process.stdout.write(`${frame}\n`);
          // Clear and redraw in place on a terminal; elsewhere (a pipe, a file) append, a blank line between snapshots.
          else if (tty) process.stdout.write(`\x1b[H\x1b[2J\x1b[3Jevery ${opts.watch}s · Ctrl-C to stop\n\n${frame}\n`);
          else process.stdout.write(`${first ? '' : '\n'}${frame}\n`);
          await sleep(systemClock, intervalMs, stop.signal).catch(() => undefined);
        }
        process.exitCode = 0;
      } finally {
        await store.close();
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });

registerServe(program);
registerRelay(program);
registerAgent(program);
registerConsole(program);

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

/** The store's status and the alerts the monitors decided (`monitor/alerts`). */
/** The relay topologies `baton status --relay` shows, inspected once per frame (never in the background). */
async function watchRelays(files: readonly string[], amqpUrl: string | undefined) {
  const { RelayWatch } = await import('../monitor/relay-watch.js');
  return new RelayWatch(await relayProviders(files, amqpUrl), { clock: systemClock, log: await defaultLogger(), everyMs: 5000 });
}

async function readWithAlerts(store: Store): Promise<FormattableStatus> {
  const [status, alerts] = await Promise.all([readStatus(store), readActiveAlerts(store)]);
  return { ...status, alerts };
}

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
