/**
 * The two names the scheduler deals in, kept apart by type so that one is never passed for the other:
 * - a **task** is what the user declares (`cluster.task('sync', …)`): schedule, mode, options, pause;
 * - a **unit** is one placeable part of a task (modes.ts): the task itself for most modes, `task#i` for
 *   shard i of a `sharded` task, `task@node` for a node's share of a `broadcast` task. A unit has its own
 *   owner key, fencing token, run records, checkpoint and triggers.
 * Task names contain neither `#` nor `@` (keys.ts), so a unit name always tells its task.
 */

declare const brand: unique symbol;
/** A task's name, as declared. */
export type TaskName = string & { readonly [brand]: 'TaskName' };
/** A unit's name: the task's, `task#i` (shard), or `task@node` (broadcast share). */
export type UnitName = string & { readonly [brand]: 'UnitName' };

/** A validated task name as a TaskName (keys.ts `assertTaskName` checks the text). */
export const asTaskName = (name: string): TaskName => name as TaskName;

/** The unit of a task that has one unit: the task itself. */
export const soleUnit = (task: TaskName): UnitName => task as string as UnitName;
/** Shard `index` of a sharded task. */
export const shardUnit = (task: TaskName, index: number): UnitName => `${task}#${index}` as UnitName;
/** Node `nodeId`'s share of a broadcast task. */
export const broadcastUnit = (task: TaskName, nodeId: string): UnitName => `${task}@${nodeId}` as UnitName;

/** The task a unit belongs to (`a#3` → `a`, `a@node-1` → `a`, `a` → `a`). */
export function taskOfUnit(unit: UnitName): TaskName {
  const cut = unit.search(/[#@]/);
  return (cut === -1 ? unit : unit.slice(0, cut)) as TaskName;
}
