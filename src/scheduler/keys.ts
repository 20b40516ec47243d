/**
 * Where the scheduler keeps things in the store. One owner key per task; one record per tick (the unique
 * claim *is* the run record); one checkpoint per task.
 */
import { ConfigError } from '../core/errors.js';

const TASK_NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;

export function assertTaskName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !TASK_NAME.test(name)) {
    throw new ConfigError(
      `task name: expected 1–128 characters of letters, digits, '_', '.', ':' or '-' starting with a letter or digit, got ${JSON.stringify(name)}`,
    );
  }
}

export const TASK_OWNER_PREFIX = 'task/';
export const ownerKey = (task: string): string => `${TASK_OWNER_PREFIX}${task}`;
export const taskOfOwnerKey = (key: string): string => key.slice(TASK_OWNER_PREFIX.length);
export const runPrefix = (task: string): string => `run/${task}/`;
/** Zero-padded so that keys sort by tick time. */
export const runKey = (task: string, tick: number): string => `${runPrefix(task)}${String(tick).padStart(15, '0')}`;
export const checkpointKey = (task: string): string => `checkpoint/${task}`;
/** The last declaration of a task seen by the cluster: lets status list tasks while no node runs them. */
export const DECLARATION_PREFIX = 'decl/';
export const declarationKey = (task: string): string => `${DECLARATION_PREFIX}${task}`;
/** Each version of a task's declaration (by fingerprint), to name the fields that differ between versions. */
export const declarationVersionKey = (task: string, fingerprint: string): string => `declv/${task}/${fingerprint}`;
/**
 * The run record of a manual trigger: `run/<task>/<trigger id>`. Trigger ids start with the zero-padded
 * request time, so these records sort among the tick records by time; the `-` after the digits keeps
 * them apart from a tick's own key (see `isTriggerRunKey`).
 */
export const triggerRunKey = (task: string, triggerId: string): string => `${runPrefix(task)}${triggerId}`;
/** Pending manual triggers of a task, written by `cluster.trigger()` on any node: `trigger/<task>/<id>`. */
export const TRIGGER_PREFIX = 'trigger/';
export const triggerPrefix = (task: string): string => `${TRIGGER_PREFIX}${task}/`;
export const triggerKey = (task: string, id: string): string => `${triggerPrefix(task)}${id}`;
/** Present while the task is paused cluster-wide. */
export const PAUSE_PREFIX = 'pause/';
export const pauseKey = (task: string): string => `${PAUSE_PREFIX}${task}`;
/** Concurrency slot `i` of a group: an ownership key held by the running node's session. */
export const slotPrefix = (group: string): string => `slot/${group}/`;
export const slotKey = (group: string, i: number): string => `${slotPrefix(group)}${i}`;
