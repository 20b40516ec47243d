/**
 * Placement modes: who runs a task's ticks. A task is split into *units*, each with its own owner key,
 * fencing token, run records and checkpoint; the coordinator places units, a runner runs one unit.
 *
 * | mode          | units                         | who owns a unit                                             |
 * |---------------|-------------------------------|-------------------------------------------------------------|
 * | `singleton`   | the task                      | one node, spread evenly (rendezvous hashing, bounded load)   |
 * | `preferred`   | the task                      | the best-ranked live node by `prefer`, fail-back with hysteresis |
 * | `mutex`       | the task                      | nobody between ticks; at each tick every node races          |
 * | `round-robin` | the task                      | nobody between ticks; at each tick the next node in turn     |
 * | `broadcast`   | one per node (`task@node`)    | that node                                                    |
 * | `sharded`     | one per shard (`task#i`)      | spread evenly, each shard owned and fenced on its own       |
 * | `dispatch`    | the task (the producer)       | like singleton; every node consumes the queue (queue.ts)    |
 */
import { broadcastUnit, shardUnit, soleUnit, type TaskName, type UnitName } from './names.js';
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';

export const TASK_MODES = ['singleton', 'preferred', 'mutex', 'round-robin', 'broadcast', 'sharded', 'dispatch'] as const;
export type TaskMode = (typeof TASK_MODES)[number];

/**
 * Matches a node: every entry must match — `node` against the node id, any other key against the
 * node's label of that name (`{ region: 'eu-west' }`, `{ role: 'primary' }`).
 */
export type NodeSelector = Readonly<Record<string, string>>;

/** Options of the dispatch queue (mode `dispatch`). */
export interface QueueOptions {
  /** How long a consumed item stays invisible to other consumers; extended while the consumer runs. Default 30s. */
  readonly visibilityTimeout?: Duration;
  /** Deliveries of an item before it goes to the dead letters. Default 5. */
  readonly maxAttempts?: number;
  /** Delay before a failed item is delivered again: fixed, or doubling from `initial` to `max`. Default `{ initial: '1s', max: '1m' }`. */
  readonly backoff?: Duration | { readonly initial: Duration; readonly max: Duration };
  /** Items a node consumes at the same time. Default 1. */
  readonly workers?: number;
}

export interface ModeOptions {
  /** Placement mode. Default `'singleton'`. */
  readonly mode?: TaskMode;
  /** `preferred`: node selectors, best first. A node matching none ranks last. */
  readonly prefer?: NodeSelector | readonly NodeSelector[];
  /**
   * `preferred`: how long a better-ranked node must have been alive before the task fails back to it —
   * the hysteresis that keeps a flapping primary from bouncing the task. Default 30s.
   */
  readonly failbackAfter?: Duration;
  /** `sharded`: a number of shards, or the items (one shard each). */
  readonly shards?: number | readonly string[];
  /** `dispatch`: the queue. */
  readonly queue?: QueueOptions;
}

export const MODE_OPTION_NAMES = ['mode', 'prefer', 'failbackAfter', 'shards', 'queue'] as const satisfies readonly (keyof ModeOptions)[];

export interface ResolvedQueue {
  readonly visibilityMs: number;
  readonly maxAttempts: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly workers: number;
}

export type ResolvedMode =
  | { readonly kind: 'singleton' | 'mutex' | 'round-robin' | 'broadcast' }
  | { readonly kind: 'preferred'; readonly prefer: readonly NodeSelector[]; readonly failbackAfterMs: number }
  | { readonly kind: 'sharded'; readonly count: number; readonly items: readonly string[] | undefined }
  | { readonly kind: 'dispatch'; readonly queue: ResolvedQueue };

/** What a run of a shard knows about its shard. */
export interface ShardInfo {
  /** 0 … count − 1. */
  readonly index: number;
  readonly count: number;
  /** The item of this shard, when the task was declared with `shards: [items]`. */
  readonly item?: string;
}

/** One placeable part of a task (see the table above). */
export interface TaskUnit {
  /** The unit's name: the task's, `task#i` for a shard, `task@node` for a node's broadcast share. */
  readonly name: UnitName;
  readonly task: TaskName;
  readonly shard?: ShardInfo;
  /**
   * How the coordinator places it: `balanced` over the declaring nodes, `ranked` by `prefer`, `own`
   * (this node only), `turns` (acquired at each tick, released when idle).
   */
  readonly placement: 'balanced' | 'ranked' | 'own' | 'turns';
}

const MAX_SHARDS = 10_000;
const ITEM = /^[\w.:-]{1,128}$/;

export function parseMode(options: ModeOptions, where: string): ResolvedMode {
  const mode = options.mode ?? 'singleton';
  if (!TASK_MODES.includes(mode)) {
    throw new ConfigError(`${where}: mode must be one of ${TASK_MODES.map((m) => `"${m}"`).join(', ')}, got ${describeValue(mode)}`);
  }
  const only = (field: keyof ModeOptions, allowed: TaskMode) => {
    if (options[field] !== undefined && mode !== allowed) throw new ConfigError(`${where}: ${field} applies to mode "${allowed}" only (mode is "${mode}")`);
  };
  only('prefer', 'preferred');
  only('failbackAfter', 'preferred');
  only('shards', 'sharded');
  only('queue', 'dispatch');
  switch (mode) {
    case 'preferred':
      return {
        kind: 'preferred',
        prefer: parsePrefer(options.prefer, where),
        failbackAfterMs: options.failbackAfter === undefined ? 30_000 : parseDuration(options.failbackAfter, `${where}: failbackAfter`),
      };
    case 'sharded':
      return parseShards(options.shards, where);
    case 'dispatch':
      return { kind: 'dispatch', queue: parseQueue(options.queue, where) };
    default:
      return { kind: mode };
  }
}

function parsePrefer(value: unknown, where: string): NodeSelector[] {
  if (value === undefined) throw new ConfigError(`${where}: mode "preferred" needs prefer, e.g. { region: 'eu-west' } or [{ node: 'a' }, { node: 'b' }]`);
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  if (list.length === 0) throw new ConfigError(`${where}: prefer must list at least one selector`);
  return list.map((selector, i) => {
    const field = Array.isArray(value) ? `${where}: prefer[${i}]` : `${where}: prefer`;
    if (typeof selector !== 'object' || selector === null || Array.isArray(selector)) {
      throw new ConfigError(`${field}: must be an object of label → value such as { region: 'eu-west' }, got ${describeValue(selector)}`);
    }
    const entries = Object.entries(selector);
    if (entries.length === 0) throw new ConfigError(`${field}: an empty selector matches every node; name at least one label`);
    for (const [k, v] of entries) {
      if (typeof v !== 'string') throw new ConfigError(`${field}.${k}: must be a string, got ${describeValue(v)}`);
    }
    return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1))) as NodeSelector;
  });
}

function parseShards(value: unknown, where: string): ResolvedMode {
  if (value === undefined) throw new ConfigError(`${where}: mode "sharded" needs shards: a number of shards or a list of items`);
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > MAX_SHARDS) {
      throw new ConfigError(`${where}: shards must be an integer from 1 to ${MAX_SHARDS} or a list of items, got ${describeValue(value)}`);
    }
    return { kind: 'sharded', count: value, items: undefined };
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SHARDS) {
    throw new ConfigError(`${where}: shards must be an integer from 1 to ${MAX_SHARDS} or a non-empty list of items, got ${describeValue(value)}`);
  }
  for (const [i, item] of value.entries()) {
    if (typeof item !== 'string' || !ITEM.test(item)) {
      throw new ConfigError(`${where}: shards[${i}]: expected 1–128 letters, digits, '_', '.', ':' or '-', got ${describeValue(item)}`);
    }
  }
  if (new Set(value).size !== value.length) throw new ConfigError(`${where}: shards lists an item twice`);
  return { kind: 'sharded', count: value.length, items: [...(value as string[])] };
}

function parseQueue(value: unknown, where: string): ResolvedQueue {
  const options = (value ?? {}) as QueueOptions;
  if (typeof options !== 'object' || Array.isArray(options)) throw new ConfigError(`${where}: queue must be an object, got ${describeValue(value)}`);
  const known = new Set(['visibilityTimeout', 'maxAttempts', 'backoff', 'workers']);
  const unknown = Object.keys(options).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new ConfigError(`${where}: queue: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...known].join(', ')})`);
  const visibilityMs = options.visibilityTimeout === undefined ? 30_000 : parseDuration(options.visibilityTimeout, `${where}: queue.visibilityTimeout`);
  if (visibilityMs < 1000) throw new ConfigError(`${where}: queue.visibilityTimeout must be at least 1s, got ${visibilityMs}ms`);
  return {
    visibilityMs,
    maxAttempts: integer(options.maxAttempts ?? 5, 1, 1000, `${where}: queue.maxAttempts`),
    backoff: parseBackoffOption(options.backoff, `${where}: queue.backoff`),
    workers: integer(options.workers ?? 1, 1, 100, `${where}: queue.workers`),
  };
}

/** A fixed delay, or `{ initial, max }` doubling: shared by `retryBackoff` and `queue.backoff`. */
export function parseBackoffOption(value: unknown, field: string): { initialMs: number; maxMs: number } {
  if (value === undefined) return { initialMs: 1000, maxMs: 60_000 };
  if (typeof value === 'object' && value !== null) {
    const v = value as { initial?: unknown; max?: unknown };
    const unknown = Object.keys(value).filter((k) => k !== 'initial' && k !== 'max');
    if (unknown.length > 0 || v.initial === undefined || v.max === undefined) {
      throw new ConfigError(`${field}: must be a duration or { initial, max }, got ${describeValue(value)}`);
    }
    const initialMs = parseDuration(v.initial, `${field}.initial`);
    const maxMs = parseDuration(v.max, `${field}.max`);
    if (maxMs < initialMs) throw new ConfigError(`${field}.max (${maxMs}ms) must be at least ${field.split(': ').pop()}.initial (${initialMs}ms)`);
    return { initialMs, maxMs };
  }
  const fixed = parseDuration(value, field);
  return { initialMs: fixed, maxMs: fixed };
}

export function integer(value: unknown, min: number, max: number, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${field}: must be an integer from ${min} to ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/** The units of a task as seen by node `nodeId`. */
export function unitsOf(task: TaskName, mode: ResolvedMode, nodeId: string): TaskUnit[] {
  switch (mode.kind) {
    case 'broadcast':
      return [{ name: broadcastUnit(task, nodeId), task, placement: 'own' }];
    case 'sharded':
      return Array.from({ length: mode.count }, (_, index) => ({
        name: shardUnit(task, index),
        task,
        shard: { index, count: mode.count, ...(mode.items ? { item: mode.items[index] as string } : {}) },
        placement: 'balanced' as const,
      }));
    case 'preferred':
      return [{ name: soleUnit(task), task, placement: 'ranked' }];
    case 'mutex':
    case 'round-robin':
      return [{ name: soleUnit(task), task, placement: 'turns' }];
    default:
      return [{ name: soleUnit(task), task, placement: 'balanced' }];
  }
}

/**
 * The unit names of a task as node `nodeId` declared it, from its published declaration (mode and shard
 * count): how placement, status and triggers see the tasks of other nodes.
 */
export function declaredUnitNames(task: TaskName, mode: string | undefined, shards: number | undefined, nodeId: string): UnitName[] {
  if (mode === 'sharded') return Array.from({ length: shards ?? 0 }, (_, i) => shardUnit(task, i));
  if (mode === 'broadcast') return [broadcastUnit(task, nodeId)];
  return [soleUnit(task)];
}

/** Rank of a node for `prefer`: the index of the first selector it matches, or the number of selectors. */
export function rankOf(prefer: readonly NodeSelector[], node: { readonly id: string; readonly labels: Readonly<Record<string, string>> }): number {
  const index = prefer.findIndex((selector) => Object.entries(selector).every(([k, v]) => (k === 'node' ? node.id === v : node.labels[k] === v)));
  return index === -1 ? prefer.length : index;
}
