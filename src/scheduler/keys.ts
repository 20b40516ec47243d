/**
 * Where the scheduler keeps things in the store, and how a key is read back: every encoder has its
 * decoder here, so no other module slices keys by hand. One owner key per unit; one record per tick (the
 * unique claim *is* the run record); one checkpoint per unit; controls (triggers per unit, pause per task).
 */
import { ConfigError } from '../core/errors.js';
import type { TaskName, UnitName } from './names.js';

const TASK_NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;

export function assertTaskName(name: unknown): asserts name is TaskName {
  if (typeof name !== 'string' || !TASK_NAME.test(name)) {
    throw new ConfigError(
      `task name: expected 1–128 characters of letters, digits, '_', '.', ':' or '-' starting with a letter or digit, got ${JSON.stringify(name)}`,
    );
  }
}

/** The rest of `key` after `prefix`, or undefined when it does not start with it. */
function after(key: string, prefix: string): string | undefined {
  return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
}

/** Owner of a unit: an ownership key held by the owning node's session. */
export const TASK_OWNER_PREFIX = 'task/';
export const ownerKey = (unit: UnitName): string => `${TASK_OWNER_PREFIX}${unit}`;
export const unitOfOwnerKey = (key: string): UnitName => after(key, TASK_OWNER_PREFIX) as UnitName;

/**
 * Whether a change may concern task placement: sessions, owners of task keys, or a change the store
 * cannot name. An owner change of another key (a lock, a semaphore permit) does not: without this filter
 * every `cluster.lock()` acquire and release made each node re-read sessions and task owners (two reads
 * per hint, measured: 4 extra statements per lock acquire+release on PostgreSQL).
 */
export function concernsTaskOwners(change: { readonly scope: string; readonly key?: string }): boolean {
  if (change.scope === 'records') return false;
  return change.scope !== 'owners' || change.key === undefined || change.key.startsWith(TASK_OWNER_PREFIX);
}

export const runPrefix = (unit: UnitName): string => `run/${unit}/`;
/** Zero-padded so that keys sort by tick time. */
export const runKey = (unit: UnitName, tick: number): string => `${runPrefix(unit)}${String(tick).padStart(15, '0')}`;
/**
 * The run record of a manual trigger: `run/<unit>/<trigger id>`. Trigger ids start with the zero-padded
 * request time, so these records sort among the tick records by time; the `-` after the digits keeps
 * them apart from a tick's own key.
 */
export const triggerRunKey = (unit: UnitName, triggerId: string): string => `${runPrefix(unit)}${triggerId}`;

export const checkpointKey = (unit: UnitName): string => `checkpoint/${unit}`;

/** The last declaration of a task seen by the cluster: lets status list tasks while no node runs them. */
export const DECLARATION_PREFIX = 'decl/';
export const declarationKey = (task: TaskName): string => `${DECLARATION_PREFIX}${task}`;
export const taskOfDeclarationKey = (key: string): TaskName => after(key, DECLARATION_PREFIX) as TaskName;
/** Each version of a task's declaration (by fingerprint), to name the fields that differ between versions. */
export const declarationVersionKey = (task: TaskName, fingerprint: string): string => `declv/${task}/${fingerprint}`;

/** Pending manual triggers of a unit, written by `cluster.trigger()` on any node: `trigger/<unit>/<id>`. */
export const TRIGGER_PREFIX = 'trigger/';
export const triggerPrefix = (unit: UnitName): string => `${TRIGGER_PREFIX}${unit}/`;
export const triggerKey = (unit: UnitName, id: string): string => `${triggerPrefix(unit)}${id}`;
/** The unit a trigger key is for, or undefined for another key. Trigger ids hold no '/'. */
export function unitOfTriggerKey(key: string): UnitName | undefined {
  const rest = after(key, TRIGGER_PREFIX);
  const slash = rest?.lastIndexOf('/') ?? -1;
  return rest !== undefined && slash > 0 ? (rest.slice(0, slash) as UnitName) : undefined;
}

/** Present while the task is paused cluster-wide. */
export const PAUSE_PREFIX = 'pause/';
export const pauseKey = (task: TaskName): string => `${PAUSE_PREFIX}${task}`;
/** The task a pause key is for, or undefined for another key. */
export const taskOfPauseKey = (key: string): TaskName | undefined => after(key, PAUSE_PREFIX) as TaskName | undefined;

/** Controls as sent (who, when, from where): `action/<zero-padded time>-<random>`, newest kept. */
export const ACTION_PREFIX = 'action/';
export const actionKey = (id: string): string => `${ACTION_PREFIX}${id}`;

/** Concurrency slot `i` of a group: an ownership key held by the running node's session. */
export const slotPrefix = (group: string): string => `slot/${group}/`;
export const slotKey = (group: string, i: number): string => `${slotPrefix(group)}${i}`;

/**
 * A node's declared tasks, stored once per distinct set (content-addressed by {@link taskSetFingerprint}):
 * sessions name the set instead of listing thousands of tasks each (task-sets.ts).
 */
export const TASK_SET_PREFIX = 'taskset/';
export const taskSetKey = (fingerprint: string): string => `${TASK_SET_PREFIX}${fingerprint}`;
