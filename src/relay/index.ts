/**
 * Relay: multi-level database replication over RabbitMQ — each change applied exactly once per database
 * on its route, in per-key order, without loops, through broker, relay and database outages.
 * See docs/relay.md for the topology, the guarantees and operations.
 *
 * ```ts
 * import { defineTopology, openRelayClient, startRelay } from 'baton-fleet/relay';
 *
 * const topology = defineTopology(config);                 // validated; errors name the field path
 * // In the application, at node "a1": the change and its outbox row commit together.
 * const client = await openRelayClient({ topology, node: 'a1', app: 'shop' });
 * await client.transaction((tx) => client.emit(tx, 'setPrice', { sku: 'x', cents: 990 }, { key: 'x' }));
 *
 * // In the relay process of each node (e.g. `baton relay --config relay.yaml --node b1`); the relays
 * // sign what they publish with the shared keys:
 * const keys = { current: 'k1', keys: { k1: process.env.RELAY_KEY! } };
 * const relay = await startRelay({ topology, node: 'b1', amqpUrl: 'amqp://guest:guest@127.0.0.1:5672', keys });
 * await relay.close();
 * ```
 */
import { systemClock, type Clock } from '../core/clock.js';
import { openRelayDatabase, type RelayDatabaseOptions } from './database.js';
import type { RelayDatabase, RelayTx } from './dialects/dialect.js';
import { RelayEmitter, type Change, type EmitOptions, type Emitted } from './outbox.js';
import type { Topology } from './topology.js';

export { defineTopology, topicMatches, nodesOf, type Topology, type TopologyConfig, type LevelConfig, type NodeConfig, type QueueConfig, type Route, type TopologyNode } from './topology.js';
export { StatementRegistry, type StatementConfig, type ParamType, type StatementArgs, type JsonValue, type DialectKind } from './statements.js';
export { parseEnvelope, parseMessage, encodeBundle, newChangeId, timeOfChangeId, ENVELOPE_VERSION, type Envelope } from './envelope.js';
export { Signer, parseSigningKeys, SIGNATURE_HEADERS, type SigningKeys, type MessageSignature } from './signature.js';
export { EnvelopeError, SignatureError, StatementError, RelayDatabaseError, BrokerUnavailableError } from './errors.js';
export { openRelayDatabase, type RelayDatabaseOptions } from './database.js';
export type { RelayDatabase, RelayTx, QueryResult } from './dialects/dialect.js';
export { RelayEmitter, type EmitOptions, type Emitted, type Change } from './outbox.js';
export { amqpNames, type AmqpNames } from './amqp-names.js';
export { startRelay, type Relay, type RelayOptions, type RelayStatus, type RelayState } from './relay-node.js';
export { loadTopologyFile, parseTopology } from './config-file.js';

export interface RelayClientOptions {
  readonly topology: Topology;
  /** The node whose database this application writes to. */
  readonly node: string;
  /** Names the application in envelopes. Default `"app"`. */
  readonly app?: string;
  readonly clock?: Clock;
  readonly database?: RelayDatabaseOptions;
}

/** An application's handle on its node's database, to make changes that the relay replicates. */
export interface RelayClient {
  readonly db: RelayDatabase;
  /**
   * Runs `fn` in one transaction of the node's database; the outbox rows of its emits are written in one
   * statement before the commit.
   */
  transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T>;
  /** See {@link RelayEmitter.emit}: runs the statement and writes its outbox rows in `tx`. */
  emit(tx: RelayTx, statement: string, args: Readonly<Record<string, unknown>>, options: EmitOptions): Promise<Emitted>;
  /** See {@link RelayEmitter.emitMany}: several changes in order, with one sequence statement for all. */
  emitMany(tx: RelayTx, changes: readonly Change[]): Promise<Emitted[]>;
  close(): Promise<void>;
}

/**
 * Opens the node's database (creating the relay tables when missing) for an application that emits changes.
 * @throws ConfigError (unknown node, bad keys), RelayDatabaseError.
 */
export async function openRelayClient(options: RelayClientOptions): Promise<RelayClient> {
  const node = options.topology.node(options.node);
  const db = await openRelayDatabase(node.database, { ...(options.clock ? { clock: options.clock } : {}), ...options.database });
  try {
    await db.ensureSchema();
  } catch (error) {
    await db.close();
    throw error;
  }
  const emitter = new RelayEmitter({ topology: options.topology, node: node.id, db, clock: options.clock ?? systemClock, ...(options.app !== undefined ? { app: options.app } : {}) });
  return {
    db,
    transaction: (fn) => emitter.transaction(fn),
    emit: (tx, statement, args, emitOptions) => emitter.emit(tx, statement, args, emitOptions),
    emitMany: (tx, changes) => emitter.emitMany(tx, changes),
    close: () => db.close(),
  };
}
export { runRelayCommand, relayMetricsText, type RelayCommand, type RelayCommandOptions } from './command.js';
export { inspectRelay, type RelayInspection, type TopologyInspection } from './inspect.js';
export { relayStatusProvider, type RelayStatusProviderOptions } from './status-provider.js';
