/**
 * What `baton relay --config relay.yaml [--node ID …] [--amqp URL]` runs: the relays of the chosen nodes
 * of a topology file in this process, until the signal aborts. Keys come from the environment
 * (`BATON_RELAY_KEYS=kid=secret[,kid=secret…]`, first is current), never from the file or the command line.
 */
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadTopologyFile } from './config-file.js';
import { startRelay, type Relay, type RelayStatus } from './relay-node.js';
import { parseSigningKeys } from './signature.js';

export interface RelayCommandOptions {
  /** Path of the topology file (YAML or JSON). */
  readonly config: string;
  /** Nodes to serve; default: every node of the topology (one process serving a whole small topology). */
  readonly nodes?: readonly string[];
  /** Default `BATON_RELAY_AMQP` from `env`, else `amqp://guest:guest@127.0.0.1:5672`. */
  readonly amqpUrl?: string;
  /** Where `BATON_RELAY_KEYS` and `BATON_RELAY_AMQP` are read. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Messages per transaction, see RelayOptions.batchSize. */
  readonly batchSize?: number;
}

export interface RelayCommand {
  readonly relays: ReadonlyMap<string, Relay>;
  /** The status of every relay, for `baton relay --status`, metrics and the dashboard. */
  status(): Promise<RelayStatus[]>;
  close(): Promise<void>;
}

/**
 * Starts the relays. @throws ConfigError (unreadable or invalid file, unknown node, missing keys);
 * on failure nothing is left running.
 */
export async function runRelayCommand(options: RelayCommandOptions): Promise<RelayCommand> {
  const env = options.env ?? process.env;
  const keysText = env.BATON_RELAY_KEYS;
  if (!keysText) throw new ConfigError('BATON_RELAY_KEYS: must be set to kid=secret[,kid=secret…] (the first key signs; all verify)');
  const keys = parseSigningKeys(keysText);
  const topology = await loadTopologyFile(options.config);
  const nodes = options.nodes && options.nodes.length > 0 ? options.nodes : topology.nodes.map((n) => n.id);
  for (const node of nodes) topology.node(node); // ConfigError before anything starts
  const amqpUrl = options.amqpUrl ?? env.BATON_RELAY_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
  const relays = new Map<string, Relay>();
  try {
    for (const node of nodes) {
      relays.set(
        node,
        await startRelay({
          topology,
          node,
          amqpUrl,
          keys,
          ...(options.clock ? { clock: options.clock } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
          ...(options.batchSize ? { batchSize: options.batchSize } : {}),
        }),
      );
    }
  } catch (error) {
    await Promise.all([...relays.values()].map((r) => r.close()));
    throw error;
  }
  return {
    relays,
    status: () => Promise.all([...relays.values()].map((r) => r.status())),
    close: async () => {
      await Promise.all([...relays.values()].map((r) => r.close()));
    },
  };
}

/**
 * Relay statuses in the Prometheus text format (no client library needed), for `/metrics`:
 * `baton_relay_lag_ms`, `baton_relay_outbox_depth`, `baton_relay_dead_letter_depth`,
 * `baton_relay_held_depth`, `baton_relay_parked_depth`, `baton_relay_queue_depth`, `baton_relay_up`
 * (broker and database both reachable), and the counters `baton_relay_applied_total`,
 * `baton_relay_forwarded_total`, `baton_relay_published_total`, `baton_relay_dead_lettered_total`.
 * A value that could not be read is left out rather than reported as 0.
 */
export function relayMetricsText(statuses: readonly RelayStatus[]): string {
  const gauges: [string, string, (s: RelayStatus) => number | null][] = [
    ['baton_relay_lag_ms', 'Wall ms from creation at the origin to commit here, newest change of the last batch.', (s) => s.lagMs],
    ['baton_relay_outbox_depth', 'Changes waiting in the outbox of the relay node database.', (s) => s.outboxDepth],
    ['baton_relay_dead_letter_depth', 'Messages in the relay dead-letter queue (whole topology).', (s) => s.deadLetterDepth],
    ['baton_relay_held_depth', 'Changes held until an earlier change of their key arrives.', (s) => s.heldDepth],
    ['baton_relay_parked_depth', 'Changes parked (could not be applied) for an operator.', (s) => s.parkedDepth],
    ['baton_relay_queue_depth', 'Ready messages in the node partition queues.', (s) => s.queueDepth],
    ['baton_relay_up', '1 when the broker and the database are both reachable.', (s) => (s.brokerConnected && s.databaseUp ? 1 : 0)],
  ];
  const counters: [string, string, (s: RelayStatus) => number][] = [
    ['baton_relay_applied_total', 'Changes applied since the relay started.', (s) => s.applied],
    ['baton_relay_forwarded_total', 'Outbox rows written to forward changes since start.', (s) => s.forwarded],
    ['baton_relay_published_total', 'Outbox rows confirmed by the broker since start.', (s) => s.published],
    ['baton_relay_dead_lettered_total', 'Messages this relay sent to the dead-letter exchange since start.', (s) => s.deadLettered],
  ];
  const label = (s: RelayStatus) => `{node=${JSON.stringify(s.node)},level=${JSON.stringify(s.level)}}`;
  const lines: string[] = [];
  for (const [name, help, read] of gauges) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const s of statuses) {
      const value = read(s);
      if (value !== null && Number.isFinite(value)) lines.push(`${name}${label(s)} ${value}`);
    }
  }
  for (const [name, help, read] of counters) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const s of statuses) lines.push(`${name}${label(s)} ${read(s)}`);
  }
  return `${lines.join('\n')}\n`;
}
