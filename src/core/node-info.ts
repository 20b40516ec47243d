import { hostname } from 'node:os';
import { currentProcessIdentity, type ProcessIdentity } from './process-identity.js';
import { randomId } from './ids.js';

/** What a task looks like to other nodes and to `baton status` (no code, just its declaration). */
export interface TaskDeclaration {
  /** As written by the user: `every 10s`, or `cron 0 0 3 * * *` with ` tz Europe/Paris` when a zone is set. */
  readonly schedule: string;
  /** The placement mode (`singleton`, `preferred`, `mutex`, `round-robin`, `broadcast`, `sharded`, `dispatch`). */
  readonly mode: string;
  /** Hash of every option that must be equal on all nodes: nodes that differ are told and kept apart. */
  readonly fingerprint?: string;
  /** For a `sharded` task: its number of shards (units `task#0` … `task#n-1`). */
  readonly shards?: number;
}

/** A node: one process of the cluster, as published in its session. */
export interface NodeInfo {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** baton version of the node. */
  readonly version: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Wall time the node started, ms since the epoch. */
  readonly startedAt: number;
  readonly process: ProcessIdentity;
  /**
   * The tasks this node declares, by name: it competes only for these. Empty in a session record that
   * names its list by `taskSet` instead (scheduler/task-sets.ts resolves it).
   */
  readonly tasks: Readonly<Record<string, TaskDeclaration>>;
  /** The fingerprint of the stored task list this session publishes instead of `tasks`. */
  readonly taskSet?: string;
  /** `monitor` for the session of a monitor (`baton serve`, `cluster.monitor()`): not a node, runs no task. */
  readonly role?: 'monitor';
  /**
   * Set while this node's estimate of the store's clock cannot be bounded (store-clock.ts: no sample with
   * a short round trip lately, or samples that keep disagreeing): it steps aside, owning no task that a
   * node with a bounded clock also declares.
   */
  readonly clockUnbounded?: true;
}

export const BATON_VERSION = '0.1.0';

export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}-${randomId(3)}`;
}

export function describeNode(info: Pick<NodeInfo, 'host' | 'pid' | 'id'>): string {
  return `${info.id} (${info.host}:${info.pid})`;
}

export function localProcess(): ProcessIdentity {
  return currentProcessIdentity();
}
