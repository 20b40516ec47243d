/**
 * The options of a node (`createCluster`), checked before anything is opened so that a bad option leaves
 * nothing half-open; every error names the field.
 */
import type { Clock } from '../core/clock.js';
import { describe as describeValue, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { resolveSessionTiming, type SessionTimingOptions } from '../cluster/session-timing.js';
import { resolveCoordinatorTiming } from '../scheduler/coordinator.js';
import type { Store } from '../stores/contract.js';

export interface ClusterOptions extends SessionTimingOptions {
  /** A store URL (`sqlite:./baton.db`, `memory:`) or an opened Store (then you close it yourself). */
  readonly store: string | Store;
  /** Cluster name: nodes with the same name and store form one cluster. Default `"default"`. */
  readonly name?: string;
  /** This node's id (default `host-pid-random`) and labels (e.g. `{ region: 'eu' }`). */
  readonly node?: { readonly id?: string; readonly labels?: Readonly<Record<string, string>> };
  /**
   * Longest time between two looks at placement (claim delays, hand-overs) when the store sends no hint.
   * A look reads the store only when a hint, a possible expiry or `resyncEvery` asks for it. Default
   * min(1s, TTL / 4).
   */
  readonly scanEvery?: Duration;
  /**
   * How often a node re-reads every session and task owner although the store's hints said nothing
   * changed (anti-entropy against a lost hint), jittered ±25 %. Default 30 minutes: with 100 nodes ×
   * 10,000 tasks, ≈ 560 rows/s in total on average.
   */
  readonly resyncEvery?: Duration;
  /**
   * How long a free task waits for its preferred node before any other node takes it. Default 300ms.
   * Too long delays failover when the preferred node is stuck; too short makes placement uneven.
   */
  readonly claimDelay?: Duration;
  /** How long a node must have been alive before tasks are handed over to it (rebalancing). Default: TTL. */
  readonly rebalanceAfter?: Duration;
  /** The clock (tests pass a FakeClock). Default: the system clock. */
  readonly clock?: Clock;
  /** A pino-compatible logger. Default: pino on stderr at BATON_LOG_LEVEL (default "info"). */
  readonly logger?: Logger;
}

const CLUSTER_NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;
const NODE_ID = /^[\w.:@-]{1,128}$/;
const CLUSTER_OPTIONS: ReadonlySet<string> = new Set([
  'store', 'name', 'node', 'ttl', 'renewEvery', 'safetyMargin', 'scanEvery', 'resyncEvery', 'claimDelay', 'rebalanceAfter', 'clock', 'logger',
] satisfies (keyof ClusterOptions)[]);

/**
 * Checks every option of createCluster. @returns the cluster name.
 * @throws ConfigError, DurationError — each naming the field.
 */
export function validateClusterOptions(options: ClusterOptions): string {
  if (typeof options !== 'object' || options === null) throw new ConfigError('createCluster: options must be an object');
  const unknown = Object.keys(options).filter((key) => !CLUSTER_OPTIONS.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(
      `createCluster: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...CLUSTER_OPTIONS].join(', ')})`,
    );
  }
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || !CLUSTER_NAME.test(name)) {
    throw new ConfigError(
      `name: expected 1–64 letters, digits, '_', '.' or '-' starting with a letter or digit, got ${JSON.stringify(options.name)}`,
    );
  }
  if (options.store === undefined) throw new ConfigError('store: required, e.g. "sqlite:./baton.db" or "memory:"');
  validateNode(options.node);
  resolveCoordinatorTiming(options, resolveSessionTiming(options).ttlMs);
  return name;
}

/** The node id goes into keys (`task@node`) and the labels into placement (`prefer`): both plain strings. */
function validateNode(node: unknown): void {
  if (node === undefined) return;
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw new ConfigError(`node: must be { id?, labels? }, got ${describeValue(node)}`);
  const { id, labels, ...rest } = node as { id?: unknown; labels?: unknown };
  if (Object.keys(rest).length > 0) throw new ConfigError(`node: unknown field ${Object.keys(rest).map((k) => JSON.stringify(k)).join(', ')} (known: id, labels)`);
  if (id !== undefined && (typeof id !== 'string' || !NODE_ID.test(id))) {
    throw new ConfigError(`node.id: expected 1–128 letters, digits, '_', '.', ':', '@' or '-', got ${describeValue(id)}`);
  }
  if (labels === undefined) return;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new ConfigError(`node.labels: must be an object of strings, got ${describeValue(labels)}`);
  for (const [key, value] of Object.entries(labels)) {
    if (typeof value !== 'string') throw new ConfigError(`node.labels.${key}: must be a string, got ${describeValue(value)}`);
  }
}
