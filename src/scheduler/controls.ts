/**
 * Cluster-wide controls of a task, written by any node and obeyed by whichever node owns the task:
 * manual triggers (`trigger/<task>/<id>`) and pause (`pause/<task>`). They are plain records, not fenced:
 * any node may write them; the owner reads them (on store hints, before each tick, and at least every
 * few seconds) and acts under its own fenced lease.
 */
import { ConfigError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import type { Store } from '../stores/contract.js';
import { assertTaskName, declarationKey, PAUSE_PREFIX, pauseKey, triggerKey, triggerPrefix } from './keys.js';
import { broadcastUnit, declaredUnitNames } from './modes.js';
import type { DeclarationRecord } from './task.js';

export interface TriggerRecord {
  readonly id: string;
  readonly task: string;
  /** Wall time of the request on the requesting node: the triggered run's `tick`. */
  readonly requestedAt: number;
  readonly node: string;
}

export interface PauseRecord {
  readonly task: string;
  readonly node: string;
  readonly at: number;
}

/**
 * A trigger's id starts with the zero-padded request time, so pending triggers list oldest first and
 * their run records sort by time among the task's ticks.
 */
export function triggerId(now: number): string {
  return `${String(now).padStart(15, '0')}-${randomId(6)}`;
}

/** Writes a trigger for one unit of a task (modes.ts): several units of a task share the trigger's id. */
export async function writeTrigger(store: Store, unit: string, id: string, node: string, now: number): Promise<void> {
  const record: TriggerRecord = { id, task: unit, requestedAt: now, node };
  await store.put(triggerKey(unit, id), record, { ifVersion: 'absent' });
}

/** Pending triggers of a task, oldest first (bounded: more are picked up on the next look). */
export async function pendingTriggers(store: Store, task: string, limit = 100): Promise<TriggerRecord[]> {
  return (await store.list<TriggerRecord>(triggerPrefix(task), { limit })).map((r) => r.value);
}

export async function writePause(store: Store, task: string, node: string, now: number): Promise<void> {
  const record: PauseRecord = { task, node, at: now };
  await store.put(pauseKey(task), record);
}

/** Removes the pause record; false when the task was not paused. */
export async function clearPause(store: Store, task: string): Promise<boolean> {
  return store.delete(pauseKey(task));
}

export async function isPaused(store: Store, task: string): Promise<boolean> {
  return (await store.get(pauseKey(task))) !== null;
}

/** Names of every paused task (for status). */
export async function pausedTasks(store: Store): Promise<Set<string>> {
  return new Set((await store.list(PAUSE_PREFIX)).map((r) => r.key.slice(PAUSE_PREFIX.length)));
}

/**
 * The last declaration of a task any node published (`decl/<task>`), for controls sent by a process that
 * does not declare the task itself (another node, a monitor). @throws ConfigError when none exists.
 */
export async function requireDeclaration(store: Store, task: string, what: string): Promise<DeclarationRecord> {
  assertTaskName(task);
  const declaration = await store.get<DeclarationRecord>(declarationKey(task));
  if (declaration) return declaration.value;
  throw new ConfigError(`cluster "${store.cluster}": ${what}: task "${task}" is not declared by any node`);
}

/** The units a trigger of `task` goes to: every shard of a sharded task, every live node's share of a broadcast task, else the task. */
export async function unitsToTrigger(store: Store, task: string, mode: string | undefined, shards: number | undefined, nodeId: string): Promise<string[]> {
  if (mode === 'broadcast') {
    const sessions = await store.listSessions();
    return [...new Set(sessions.filter((s) => s.info.tasks[task]).map((s) => broadcastUnit(task, s.info.id)))];
  }
  return declaredUnitNames(task, mode, shards, nodeId);
}

/** Writes one trigger of `task` to each of its units; returns the trigger's id. */
export async function triggerTask(store: Store, task: string, units: readonly string[], node: string, now: number): Promise<string> {
  const id = triggerId(now);
  for (const unit of units) await writeTrigger(store, unit, id, node, now);
  return id;
}
