/**
 * The run options of a task (everything but its schedule): validated once, when the task is declared,
 * into a {@link RunPolicy} the runner reads. Every error names the task and the field.
 * docs/scheduling.md describes each option; the defaults here are the ones documented there.
 */
import type { TaskName } from './names.js';
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import { assertTaskName } from './keys.js';
import { integer, parseBackoffOption } from './modes.js';
import type { Schedule } from './schedule.js';

export type MisfirePolicy = 'run-once' | 'skip' | { readonly catchUp: number };
export type OverlapPolicy = 'skip' | 'queue' | 'allow';

/** The options of a task besides its schedule and history. */
export interface RunOptions {
  /** Delays each tick's start by a pseudo-random amount in [0, jitter), the same on every node. Default 0. */
  readonly jitter?: Duration;
  /** What to do with ticks that could not run on time. Default `'run-once'`. */
  readonly misfire?: MisfirePolicy;
  /** How late a tick may start and still count as on time. Default min(interval, 1s); 1s for cron and `at`. */
  readonly misfireGrace?: Duration;
  /** What to do with ticks that fall due while a run is in progress. Default `'skip'`. */
  readonly overlap?: OverlapPolicy;
  /** For `queue`: ticks waiting at most; for `allow`: runs at once on the owner. Default 10. */
  readonly overlapLimit?: number;
  /** Aborts an attempt's `ctx.signal` with a TimeoutError after this long. Default: none. */
  readonly timeout?: Duration;
  /** Attempts after the first when a run fails or times out, on the same tick. Default 0. */
  readonly retries?: number;
  /** Pause before each retry: fixed, or doubling from `initial` up to `max`. Default `{ initial: '1s', max: '1m' }`. */
  readonly retryBackoff?: Duration | { readonly initial: Duration; readonly max: Duration };
  /** Cluster-wide limit of simultaneous runs of the tasks of `concurrencyGroup`. Default: no limit. */
  readonly concurrency?: number;
  /** Tasks sharing this name share `concurrency` slots. Default: the task's own name. */
  readonly concurrencyGroup?: string;
  /** Tasks whose run for the same tick must have succeeded before this one starts. */
  readonly dependsOn?: string | readonly string[];
  /** How long a tick waits for its dependencies. Default: until the task's next tick (one interval). */
  readonly dependencyTimeout?: Duration;
}

export type ResolvedMisfire = { readonly kind: 'run-once' } | { readonly kind: 'skip' } | { readonly kind: 'catch-up'; readonly max: number };

export interface RunPolicy {
  readonly jitterMs: number;
  readonly misfire: ResolvedMisfire;
  readonly misfireGraceMs: number;
  readonly overlap: OverlapPolicy;
  readonly overlapLimit: number;
  readonly timeoutMs: number | undefined;
  readonly retries: number;
  readonly retryBackoff: { readonly initialMs: number; readonly maxMs: number };
  readonly concurrency: { readonly limit: number; readonly group: string } | undefined;
  readonly dependsOn: readonly TaskName[];
  /** Undefined: until the next tick is due (10 minutes when the schedule has none). */
  readonly dependencyTimeoutMs: number | undefined;
}

export const RUN_OPTION_NAMES = [
  'jitter', 'misfire', 'misfireGrace', 'overlap', 'overlapLimit', 'timeout', 'retries', 'retryBackoff',
  'concurrency', 'concurrencyGroup', 'dependsOn', 'dependencyTimeout',
] as const satisfies readonly (keyof RunOptions)[];

const DEFAULT_GRACE_MS = 1000;
const MAX_LIMIT = 1000;

export function parseRunPolicy(options: RunOptions, schedule: Schedule, task: string, where: string): RunPolicy {
  const gap = shortestGap(schedule);
  const jitterMs = options.jitter === undefined ? 0 : parseDuration(options.jitter, `${where}: jitter`);
  if (gap !== undefined && jitterMs >= gap) {
    throw new ConfigError(`${where}: jitter (${jitterMs}ms) must be less than the interval between ticks (${gap}ms), so ticks keep their order`);
  }
  const misfireGraceMs =
    options.misfireGrace === undefined
      ? Math.min(schedule.intervalMs ?? DEFAULT_GRACE_MS, DEFAULT_GRACE_MS)
      : parseDuration(options.misfireGrace, `${where}: misfireGrace`);
  const overlap = options.overlap ?? 'skip';
  if (overlap !== 'skip' && overlap !== 'queue' && overlap !== 'allow') {
    throw new ConfigError(`${where}: overlap must be "skip", "queue" or "allow", got ${describeValue(overlap)}`);
  }
  if (options.overlapLimit !== undefined && overlap === 'skip') {
    throw new ConfigError(`${where}: overlapLimit applies to overlap "queue" or "allow" only (overlap is "skip")`);
  }
  const overlapLimit = integer(options.overlapLimit ?? 10, 1, MAX_LIMIT, `${where}: overlapLimit`);
  let timeoutMs: number | undefined;
  if (options.timeout !== undefined) {
    timeoutMs = parseDuration(options.timeout, `${where}: timeout`);
    if (timeoutMs < 1) throw new ConfigError(`${where}: timeout must be more than 0, got ${describeValue(options.timeout)}`);
  }
  const retries = integer(options.retries ?? 0, 0, 100, `${where}: retries`);
  if (options.retryBackoff !== undefined && retries === 0) {
    throw new ConfigError(`${where}: retryBackoff applies only with retries > 0`);
  }
  return {
    jitterMs,
    misfire: parseMisfire(options.misfire, where),
    misfireGraceMs,
    overlap,
    overlapLimit,
    timeoutMs,
    retries,
    retryBackoff: parseBackoffOption(options.retryBackoff, `${where}: retryBackoff`),
    concurrency: parseConcurrency(options, task, where),
    dependsOn: parseDependsOn(options.dependsOn, where),
    dependencyTimeoutMs: parseDependencyTimeout(options, where),
  };
}

function parseMisfire(value: unknown, where: string): ResolvedMisfire {
  if (value === undefined || value === 'run-once') return { kind: 'run-once' };
  if (value === 'skip') return { kind: 'skip' };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === 'catchUp') {
      return { kind: 'catch-up', max: integer((value as { catchUp: unknown }).catchUp, 1, MAX_LIMIT, `${where}: misfire.catchUp`) };
    }
  }
  throw new ConfigError(`${where}: misfire must be "run-once", "skip" or { catchUp: N }, got ${describeValue(value)}`);
}

function parseConcurrency(options: RunOptions, task: string, where: string): RunPolicy['concurrency'] {
  if (options.concurrency === undefined) {
    if (options.concurrencyGroup !== undefined) throw new ConfigError(`${where}: concurrencyGroup needs concurrency (the group's limit)`);
    return undefined;
  }
  const limit = integer(options.concurrency, 1, MAX_LIMIT, `${where}: concurrency`);
  const group = options.concurrencyGroup ?? task;
  try {
    assertTaskName(group);
  } catch {
    throw new ConfigError(`${where}: concurrencyGroup must be a name like a task's, got ${describeValue(options.concurrencyGroup)}`);
  }
  return { limit, group };
}

function parseDependsOn(value: unknown, where: string): TaskName[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.some((d) => typeof d !== 'string')) {
    throw new ConfigError(`${where}: dependsOn must be a task name or a non-empty list of task names, got ${describeValue(value)}`);
  }
  for (const name of list as string[]) {
    try {
      assertTaskName(name);
    } catch {
      throw new ConfigError(`${where}: dependsOn: ${JSON.stringify(name)} is not a valid task name`);
    }
  }
  if (new Set(list).size !== list.length) throw new ConfigError(`${where}: dependsOn lists a task twice: ${JSON.stringify(list)}`);
  return [...(list as TaskName[])];
}

function parseDependencyTimeout(options: RunOptions, where: string): number | undefined {
  if (options.dependencyTimeout === undefined) return undefined;
  if (options.dependsOn === undefined) throw new ConfigError(`${where}: dependencyTimeout applies only with dependsOn`);
  return parseDuration(options.dependencyTimeout, `${where}: dependencyTimeout`);
}

/**
 * The shortest distance between two consecutive ticks: the interval, or for cron the smallest gap among
 * its first 200 ticks from 2026-01-01; undefined for a single tick (`at`).
 */
export function shortestGap(schedule: Schedule): number | undefined {
  if (schedule.intervalMs !== undefined) return schedule.intervalMs;
  if (schedule.once !== undefined) return undefined;
  let previous = schedule.next(Date.UTC(2026, 0, 1));
  let gap: number | undefined;
  for (let i = 0; i < 200 && previous !== undefined; i++) {
    const next = schedule.next(previous);
    if (next === undefined) break;
    gap = Math.min(gap ?? Infinity, next - previous);
    previous = next;
  }
  return gap;
}
