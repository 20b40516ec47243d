import type { NodeInfo } from '../core/node-info.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { assertTaskName, DECLARATION_PREFIX, declarationKey } from './keys.js';
import type { Store } from '../stores/contract.js';
import { parseSchedule, type Schedule, type ScheduleOptions } from './schedule.js';
import type { MissReason, RunOutcome } from './events.js';
import { validateDependencies } from './dependencies.js';
import { parseRunPolicy, RUN_OPTION_NAMES, type RunOptions, type RunPolicy } from './task-options.js';

/** Options of a task. Exactly one of `every`, `cron` and `at`; see docs/scheduling.md for each option. */
export interface TaskOptions extends ScheduleOptions, RunOptions {
  /**
   * Run records kept per task in the store. Default 100. Pruned every ⌊history/4⌋ runs, so up to
   * history + ⌊history/4⌋ − 1 may exist between two prunes.
   */
  readonly history?: number;
}

/** A task's committed progress (seed name: `lastCommit`), written only with the owner's fencing token. */
export interface Checkpoint<T = unknown> {
  /** The last committed value, or undefined when none was ever committed. */
  get(): Promise<T | undefined>;
  /**
   * Commits `value`, guarded by this run's fencing token: refused with NotOwnerError (and the run's
   * signal aborts) when another node owns the task now, so a paused ex-owner can never overwrite it.
   */
  commit(value: T): Promise<void>;
}

/** What a handler receives for one run. */
export interface TaskContext<T = unknown> {
  readonly task: string;
  /** The tick this run executes: its scheduled time. */
  readonly tick: Date;
  /** How late the run started after its scheduled time plus its jitter, in ms. */
  readonly lateMs: number;
  /** The delay `jitter` added to this tick's start (0 without jitter): start = tick + jitterMs + lateMs. */
  readonly jitterMs: number;
  /** 1 for the first attempt, 2 for the first retry, … (see `retries`). */
  readonly attempt: number;
  /** True for a run requested with `cluster.trigger()` (then `tick` is the time of the request). */
  readonly trigger: boolean;
  /** Fencing token of the ownership under which this run happens; put it into your own writes. */
  readonly token: bigint;
  readonly node: NodeInfo;
  /**
   * Aborts when ownership is lost (session expired, a fenced write refused), the node shuts down, or the
   * attempt exceeds `timeout` (reason: a TimeoutError). Honour it: stop work and return. (Hand-over to
   * another node for rebalancing, and pause, wait for the run to end.)
   */
  readonly signal: AbortSignal;
  readonly checkpoint: Checkpoint<T>;
  readonly log: Logger;
}

export type TaskHandler<T = unknown> = (ctx: TaskContext<T>) => Promise<void> | void;

export interface TaskDefinition {
  readonly name: string;
  readonly schedule: Schedule;
  readonly history: number;
  readonly policy: RunPolicy;
  readonly handler: TaskHandler<never>;
}

const KNOWN_OPTIONS = new Set<string>(['every', 'cron', 'timezone', 'at', 'history', ...RUN_OPTION_NAMES]);

export function defineTask(name: unknown, options: unknown, handler: unknown): TaskDefinition {
  assertTaskName(name);
  const where = `task "${name}"`;
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`${where}: options must be an object such as { every: '10s' }, got ${JSON.stringify(options)}`);
  }
  const unknown = Object.keys(options).filter((key) => !KNOWN_OPTIONS.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  if (typeof handler !== 'function') throw new ConfigError(`${where}: handler must be a function`);
  const opts = options as TaskOptions;
  const history = opts.history ?? 100;
  if (!Number.isInteger(history) || history < 1 || history > 100_000) {
    throw new ConfigError(`${where}: history must be an integer from 1 to 100000, got ${JSON.stringify(opts.history)}`);
  }
  const schedule = parseSchedule(opts, where);
  return { name, schedule, history, policy: parseRunPolicy(opts, schedule, name, where), handler: handler as TaskHandler<never> };
}

/** A run record: the tick claim and its outcome, one per tick in the store. */
export interface RunRecord {
  readonly task: string;
  readonly tick: number;
  readonly status: 'running' | RunOutcome | 'missed';
  readonly node?: string;
  readonly host?: string;
  readonly pid?: number;
  readonly token?: string;
  readonly startedAt?: number;
  readonly endedAt?: number;
  readonly durationMs?: number;
  readonly lateMs?: number;
  /** The last attempt's error (with retries: earlier attempts' errors are replaced). */
  readonly error?: string;
  /** For status "missed": the range of ticks (this record's tick is the last) and why. */
  readonly missed?: { readonly from: number; readonly count: number; readonly reason: MissReason };
  /** Attempts made so far (written after each failed attempt when `retries` > 0, and at the end). */
  readonly attempts?: number;
  /** The jitter added to this tick's start, when the task has `jitter`. */
  readonly jitterMs?: number;
  /** A run requested with `cluster.trigger()`: true, with the trigger's id. Its `tick` is the request time. */
  readonly trigger?: boolean;
  readonly triggerId?: string;
}

/** Stored under `decl/<task>`: how the task was last declared, and by whom. */
export interface DeclarationRecord {
  readonly schedule: string;
  readonly mode: string;
  readonly node: string;
  readonly declaredAt: number;
}

/** Writes the declarations that changed (one read per task at start; writes only on change). */
export async function publishDeclarations(store: Store, definitions: Iterable<TaskDefinition>, node: string, now: number): Promise<void> {
  // One read for all tasks; writes only for what changed, a few at a time (a node may declare thousands).
  const current = new Map((await store.list<DeclarationRecord>(DECLARATION_PREFIX)).map((r) => [r.key, r.value.schedule]));
  const changed = [...definitions].filter((d) => current.get(declarationKey(d.name)) !== d.schedule.description);
  for (let i = 0; i < changed.length; i += 16) {
    await Promise.all(
      changed.slice(i, i + 16).map((d) => {
        const record: DeclarationRecord = { schedule: d.schedule.description, mode: 'singleton', node, declaredAt: now };
        return store.put(declarationKey(d.name), record);
      }),
    );
  }
}

/**
 * Checks what only the whole set of a node's tasks can tell, when the cluster starts: dependencies
 * (declared, same schedule, no cycle) and concurrency groups (one limit per group).
 * @throws ConfigError naming the tasks.
 */
export function validateTaskSet(definitions: ReadonlyMap<string, TaskDefinition>): void {
  validateDependencies(definitions);
  const groups = new Map<string, TaskDefinition>();
  for (const def of definitions.values()) {
    const concurrency = def.policy.concurrency;
    if (!concurrency) continue;
    const first = groups.get(concurrency.group);
    if (first && first.policy.concurrency?.limit !== concurrency.limit) {
      throw new ConfigError(
        `task "${def.name}": concurrency ${concurrency.limit} differs from task "${first.name}" (${first.policy.concurrency?.limit}) in concurrencyGroup "${concurrency.group}"`,
      );
    }
    groups.set(concurrency.group, first ?? def);
  }
}
