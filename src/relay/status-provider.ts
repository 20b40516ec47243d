/**
 * The relay's offer to a monitor: a status provider that inspects a topology from outside (inspect.ts)
 * each time the monitor asks. `startMonitor({ relays: [await relayStatusProvider({ topology })] })`, or
 * `baton serve --relay relay.yaml`. Its answers have the shape the monitor declares
 * (`RelayStatusProvider` of `baton-fleet/monitor`); the relay does not import the monitor.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { loadTopologyFile } from './config-file.js';
import { inspectRelay, type TopologyInspection } from './inspect.js';
import type { Topology } from './topology.js';

export interface RelayStatusProviderOptions {
  /** The topology, or the path of its file as `baton relay --config` takes it (read and validated now). */
  readonly topology: Topology | string;
  /** Default `BATON_RELAY_AMQP`, else `amqp://guest:guest@127.0.0.1:5672`. */
  readonly amqpUrl?: string;
  readonly clock?: Clock;
  readonly env?: NodeJS.ProcessEnv;
}

/** A watched relay, for the monitor's `relays` option. @throws ConfigError for a bad topology file. */
export async function relayStatusProvider(options: RelayStatusProviderOptions): Promise<{ readonly name: string; inspect(): Promise<TopologyInspection> }> {
  const topology = typeof options.topology === 'string' ? await loadTopologyFile(options.topology) : options.topology;
  const amqpUrl = options.amqpUrl ?? (options.env ?? process.env).BATON_RELAY_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
  const clock = options.clock ?? systemClock;
  return { name: topology.name, inspect: () => inspectRelay({ topology, amqpUrl, clock }) };
}
