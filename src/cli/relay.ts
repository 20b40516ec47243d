/** `baton relay`: runs the relays of a topology file's nodes in this process, or prints their status. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

interface RelayCliOptions {
  config: string;
  node: string[];
  amqp?: string;
  batch?: number;
  status?: boolean;
  json?: boolean;
}

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('replicate database changes over RabbitMQ along a topology (docs/relay.md); keys from BATON_RELAY_KEYS=kid=secret[,…]')
    .requiredOption('--config <file>', 'topology file (YAML or JSON)')
    .option('--node <id>', 'serve this node of the topology (repeatable; default: every node)', (value: string, all: string[]) => [...all, value], [])
    .option('--amqp <url>', 'broker URL (default BATON_RELAY_AMQP, else amqp://guest:guest@127.0.0.1:5672)')
    .option('--batch <n>', 'messages applied per database transaction', (value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidArgumentError('expected an integer from 1 to 10000');
      return n;
    })
    .option('--status', 'print the depths and lag of every node (outbox, held, parked, queues, dead letters) and exit')
    .option('--json', 'with --status: print JSON')
    .action(async (opts: RelayCliOptions) => {
      const relay = await import('../relay/index.js');
      const amqpUrl = opts.amqp ?? process.env.BATON_RELAY_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
      if (opts.status) {
        const topology = await relay.loadTopologyFile(opts.config);
        const inspection = await relay.inspectRelay({ topology, amqpUrl, ...(opts.node.length > 0 ? { nodes: opts.node } : {}) });
        process.stdout.write(`${opts.json ? JSON.stringify(inspection) : JSON.stringify(inspection, null, 2)}\n`);
        return;
      }
      const running = await relay.runRelayCommand({
        config: opts.config,
        nodes: opts.node,
        amqpUrl,
        ...(opts.batch !== undefined ? { batchSize: opts.batch } : {}),
      });
      process.stdout.write(`baton relay: serving ${[...running.relays.keys()].join(', ')}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await running.close();
    });
}

/** Status providers of the relay topology files given to `baton serve --relay` / `baton status --relay`. */
export async function relayProviders(files: readonly string[], amqpUrl: string | undefined) {
  if (files.length === 0) return [];
  const { relayStatusProvider } = await import('../relay/status-provider.js');
  return Promise.all(files.map((topology) => relayStatusProvider({ topology, ...(amqpUrl ? { amqpUrl } : {}) })));
}
