/**
 * What a config reload (SIGHUP) changes, task by task — computed before anything is touched:
 * - `unchanged`: same everything: its runner and lease stay, nothing happens;
 * - `updated`: same scheduler declaration (schedule, mode, run options), another command, env, cwd,
 *   description or kill grace: swapped in place, the lease stays; the next run uses the new command;
 * - `redeclared`: another declaration: removed (its run aborted, its lease released) and declared again;
 * - `added` / `removed`.
 * A kept task that depends on a task being removed or redeclared is redeclared too (the scheduler refuses
 * to remove a task another one depends on).
 * Settings outside `tasks` (store, cluster, node, ttl, monitor, alerts) need a restart: they are listed
 * in `restartNeeded` and the running values stay.
 */
import type { AgentConfig, AgentTask } from './config.js';
import type { TaskName } from '../scheduler/names.js';

export interface TaskDiff {
  readonly unchanged: readonly string[];
  readonly updated: readonly string[];
  readonly redeclared: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Top-level settings that differ and apply only after a restart. */
  readonly restartNeeded: readonly string[];
}

export function diffConfig(current: AgentConfig, next: AgentConfig): TaskDiff {
  const unchanged = new Set<string>();
  const updated = new Set<string>();
  const redeclared = new Set<string>();
  const added: string[] = [];
  const removed = [...current.tasks.keys()].filter((name) => !next.tasks.has(name));
  for (const [name, task] of next.tasks) {
    const old = current.tasks.get(name);
    if (!old) added.push(name);
    else if (old.fingerprint === task.fingerprint) unchanged.add(name);
    else if (old.definition.fingerprint === task.definition.fingerprint) updated.add(name);
    else redeclared.add(name);
  }
  // A kept task depending on one that goes away (even briefly) must be redeclared with it.
  const leaving = new Set([...removed, ...redeclared]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const name of [...unchanged, ...updated]) {
      const task = next.tasks.get(name) as AgentTask;
      if (task.definition.policy.dependsOn.some((dep) => leaving.has(dep))) {
        unchanged.delete(name);
        updated.delete(name);
        redeclared.add(name);
        leaving.add(name);
        grew = true;
      }
    }
  }
  const restartNeeded: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (current.store !== next.store) restartNeeded.push('store');
  if (current.cluster !== next.cluster) restartNeeded.push('cluster');
  if (!same(current.node, next.node)) restartNeeded.push('node');
  if (!same(current.ttl, next.ttl)) restartNeeded.push('ttl');
  if (!same(current.monitor, next.monitor)) restartNeeded.push('monitor');
  if (!same(current.alerts, next.alerts)) restartNeeded.push('alerts');
  return {
    unchanged: [...unchanged],
    updated: [...updated],
    redeclared: [...redeclared],
    added,
    removed,
    restartNeeded,
  };
}

/**
 * The order to remove tasks in: dependents before what they depend on (the scheduler refuses to remove
 * a task a declared task depends on).
 */
export function removalOrder(names: readonly string[], tasks: ReadonlyMap<string, AgentTask>): string[] {
  const pending = new Set(names);
  const order: string[] = [];
  while (pending.size > 0) {
    const ready = [...pending].filter((name) => ![...pending].some((other) => other !== name && tasks.get(other)?.definition.policy.dependsOn.includes(name as TaskName)));
    // A cycle cannot pass validation; remove the rest in any order rather than loop forever.
    const batch = ready.length > 0 ? ready : [...pending];
    for (const name of batch) {
      pending.delete(name);
      order.push(name);
    }
  }
  return order;
}
