/**
 * Cluster-wide controls of a task, written by any node and obeyed by whichever node owns the task:
 * manual triggers (`trigger/<task>/<id>`) and pause (`pause/<task>`). They are plain records, not fenced:
 * any node may write them; the owner reads them (on store hints, before each tick, and at least every
 * few seconds) and acts under its own fenced lease.
 */
import { ConfigError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import type { Store } from '../stores/contract.js';
import { ACTION_PREFIX, actionKey, assertTaskName, declarationKey, pauseKey, triggerKey, triggerPrefix } from './keys.js';
import { declaredUnitNames } from './modes.js';
import { broadcastUnit, taskOfUnit, type TaskName, type UnitName } from './names.js';
import { resolveTaskSets } from './task-sets.js';
import type { DeclarationRecord } from './task.js';

export interface TriggerRecord {
  readonly id: string;
  readonly task: TaskName;
  /** The unit this trigger record is for (a trigger of a sharded task has one record per shard). */
  readonly unit: UnitName;
  /** Wall time of the request on the requesting node: the triggered run's `tick`. */
  readonly requestedAt: number;
  readonly node: string;
}

export interface PauseRecord {
  readonly task: TaskName;
  readonly node: string;
  readonly at: number;
}

/**
 * A trigger's id starts with the zero-padded request time, so pending triggers list oldest first and
 * their run records sort by time among the task's ticks.
 */
function triggerId(now: number): string {
  return `${String(now).padStart(15, '0')}-${randomId(6)}`;
}

/** Writes a trigger for one unit of a task (modes.ts): several units of a task share the trigger's id. */
async function writeTrigger(store: Store, unit: UnitName, id: string, node: string, now: number): Promise<void> {
  const record: TriggerRecord = { id, task: taskOfUnit(unit), unit, requestedAt: now, node };
  await store.put(triggerKey(unit, id), record, { ifVersion: 'absent' });
}

/** Pending triggers of a unit, oldest first (bounded: more are picked up on the next look). */
export async function pendingTriggers(store: Store, unit: UnitName, limit = 100): Promise<TriggerRecord[]> {
  return (await store.list<TriggerRecord>(triggerPrefix(unit), { limit })).map((r) => r.value);
}

async function writePause(store: Store, task: TaskName, node: string, now: number): Promise<void> {
  const record: PauseRecord = { task, node, at: now };
  await store.put(pauseKey(task), record);
}

/** Removes the pause record; false when the task was not paused. */
async function clearPause(store: Store, task: TaskName): Promise<boolean> {
  return store.delete(pauseKey(task));
}

export async function isPaused(store: Store, task: TaskName): Promise<boolean> {
  return (await store.get(pauseKey(task))) !== null;
}

/**
 * The last declaration of a task any node published (`decl/<task>`), for controls sent by a process that
 * does not declare the task itself (another node, a monitor). @throws ConfigError when none exists.
 */
export async function requireDeclaration(store: Store, task: TaskName, what: string): Promise<DeclarationRecord> {
  assertTaskName(task);
  const declaration = await store.get<DeclarationRecord>(declarationKey(task));
  if (declaration) return declaration.value;
  // A live node's task list has it although its `decl/` record is not written yet (the node that stores
  // a new task list writes them after its start: task-sets.ts).
  for (const session of await resolveTaskSets(store, await store.listSessions())) {
    const live = session.info.tasks[task];
    if (live) return { ...live, node: session.info.id, declaredAt: session.info.startedAt };
  }
  throw new ConfigError(`cluster "${store.cluster}": ${what}: task "${task}" is not declared by any node`);
}

/** What any process of the cluster (a node, the monitor's API, the CLI) may ask of a task. */
export type ControlAction = 'trigger' | 'pause' | 'resume';

/**
 * Who asked for a control, for the record (`action/<id>`): the monitor's token label for a request over
 * its API, `cli` for a `baton` command, `node` for a call of `cluster.trigger()`/`pause()`/`resume()`.
 */
export interface Actor {
  readonly by: string;
  /** Where from: the remote address of an API request, `host:pid` of a command or node. */
  readonly address: string;
}

/** A control as recorded (`action/<id>`), newest kept; what the monitor reports as a `task:action` event. */
export interface ActionRecord {
  /** Zero-padded request time, then a random part: records list oldest first. */
  readonly id: string;
  readonly action: ControlAction;
  readonly task: TaskName;
  readonly by: string;
  readonly address: string;
  /** The process that wrote the controls (a node, a monitor, a CLI's process). */
  readonly node: string;
  /** Wall time of the request on that process, ms since the epoch. */
  readonly at: number;
  /** The trigger's id, for `trigger`. */
  readonly trigger?: string;
}

/** Action records kept in the store; older ones are deleted by the process that writes a new one. */
export const ACTION_HISTORY = 1000;

/** The newest action records, newest first. */
export async function recentActions(store: Store, limit: number): Promise<ActionRecord[]> {
  return (await store.list<ActionRecord>(ACTION_PREFIX, { reverse: true, limit })).map((r) => r.value);
}

async function recordAction(store: Store, record: ActionRecord): Promise<void> {
  await store.put(actionKey(record.id), record, { ifVersion: 'absent' });
  const newest = await store.list(ACTION_PREFIX, { reverse: true, limit: ACTION_HISTORY + 1 });
  const oldestKept = newest[ACTION_HISTORY - 1];
  if (newest.length > ACTION_HISTORY && oldestKept) await store.deleteBefore(ACTION_PREFIX, oldestKept.key);
}

/** How the sender knows the task: its own declaration, or the last one any node published. */
export interface KnownDeclaration {
  readonly mode: string | undefined;
  readonly shards: number | undefined;
}

/**
 * Sends a control of `task` from process `node`: a trigger to each of its units (every shard of a sharded
 * task, every live node's share of a broadcast task, else the task), or the pause record.
 * `declared`: the sender's own declaration; without it, the task must have been declared by some node.
 * The control is then recorded with `actor` (`action/<id>`), after it took effect: a record never
 * stands for a control that was not sent.
 * @returns the trigger's id for `trigger`. @throws ConfigError for a task no node declared.
 */
export async function sendControl(
  store: Store,
  action: ControlAction,
  task: TaskName,
  from: { readonly node: string; readonly now: number; readonly actor: Actor; readonly declared?: KnownDeclaration },
): Promise<string | undefined> {
  const declaration = from.declared ?? (await requireDeclaration(store, task, action));
  let trigger: string | undefined;
  switch (action) {
    case 'pause':
      await writePause(store, task, from.node, from.now);
      break;
    case 'resume':
      await clearPause(store, task);
      break;
    case 'trigger': {
      const units = await unitsToTrigger(store, task, declaration.mode, declaration.shards, from.node);
      trigger = triggerId(from.now);
      for (const unit of units) await writeTrigger(store, unit, trigger, from.node, from.now);
      break;
    }
  }
  await recordAction(store, {
    id: triggerId(from.now),
    action,
    task,
    by: from.actor.by,
    address: from.actor.address,
    node: from.node,
    at: from.now,
    ...(trigger !== undefined ? { trigger } : {}),
  });
  return trigger;
}

/** The units a trigger of `task` goes to. */
async function unitsToTrigger(store: Store, task: TaskName, mode: string | undefined, shards: number | undefined, nodeId: string): Promise<UnitName[]> {
  if (mode === 'broadcast') {
    const sessions = await resolveTaskSets(store, await store.listSessions());
    return [...new Set(sessions.filter((s) => s.info.tasks[task]).map((s) => broadcastUnit(task, s.info.id)))];
  }
  return declaredUnitNames(task, mode, shards, nodeId);
}
