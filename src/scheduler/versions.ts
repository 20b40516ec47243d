/**
 * Which version of a task's declaration runs when live nodes disagree (a rolling deploy changing a
 * task's options, or a mistake): the version of the declaring node whose session is the oldest. Nodes
 * with another version stay out of that task, so two versions never run side by side; the old version
 * keeps running until its last node leaves, then the new one takes over. Every node computes the same
 * answer from the same membership.
 *
 * A node whose clock is unbounded (`NodeInfo.clockUnbounded`, store-clock.ts) steps aside: it is neither
 * eligible nor decides the version while any node with a bounded clock declares the task. When none
 * does, it stays eligible — stepping aside would leave the task to nobody, and its ticks would be lost.
 */
import type { SessionRecord } from '../stores/contract.js';

export interface TaskVersions {
  /** The fingerprint that runs. */
  readonly active: string;
  /** Live nodes declaring the active version. */
  readonly eligible: ReadonlySet<string>;
  /** Every fingerprint declared by a live node, sorted (more than one: a conflict). */
  readonly fingerprints: readonly string[];
}

/** Per task declared by at least one live session. */
export function taskVersions(sessions: readonly SessionRecord[]): Map<string, TaskVersions> {
  const bounded = sessions.filter((s) => !s.info.clockUnbounded);
  const result = versionsOf(bounded);
  if (bounded.length === sessions.length) return result;
  // Tasks only nodes with unbounded clocks declare: they are better run a little off time than not at all.
  for (const [task, version] of versionsOf(sessions)) if (!result.has(task)) result.set(task, version);
  return result;
}

/**
 * Sessions are taken by task list: the resolved sessions
 * of one stored task set share one list object (task-sets.ts), so 100 nodes declaring the same 10,000
 * tasks cost 10,000 steps, not 1,000,000, and the tasks of a list share one `eligible` set.
 */
function versionsOf(sessions: readonly SessionRecord[]): Map<string, TaskVersions> {
  interface Group { readonly tasks: SessionRecord['info']['tasks']; oldest: SessionRecord; readonly ids: Set<string> }
  const older = (a: SessionRecord, b: SessionRecord): boolean => a.ageMs > b.ageMs || (a.ageMs === b.ageMs && a.info.id < b.info.id);
  const groups = new Map<object, Group>();
  for (const s of sessions) {
    const group = groups.get(s.info.tasks);
    if (!group) groups.set(s.info.tasks, { tasks: s.info.tasks, oldest: s, ids: new Set([s.info.id]) });
    else {
      group.ids.add(s.info.id);
      if (older(s, group.oldest)) group.oldest = s;
    }
  }
  const byTask = new Map<string, { oldest: SessionRecord; fingerprint: string; declared: [string, ReadonlySet<string>][] }>();
  for (const group of groups.values()) {
    for (const [task, declaration] of Object.entries(group.tasks)) {
      const fingerprint = declaration.fingerprint ?? '';
      const entry = byTask.get(task);
      if (!entry) {
        byTask.set(task, { oldest: group.oldest, fingerprint, declared: [[fingerprint, group.ids]] });
        continue;
      }
      entry.declared.push([fingerprint, group.ids]);
      if (older(group.oldest, entry.oldest)) {
        entry.oldest = group.oldest;
        entry.fingerprint = fingerprint;
      }
    }
  }
  const result = new Map<string, TaskVersions>();
  for (const [task, { fingerprint, declared }] of byTask) {
    const active = declared.filter(([f]) => f === fingerprint).map(([, ids]) => ids);
    const eligible = active.length === 1 ? (active[0] as ReadonlySet<string>) : new Set(active.flatMap((ids) => [...ids]));
    const fingerprints = declared.length === 1 ? [fingerprint] : [...new Set(declared.map(([f]) => f))].sort();
    result.set(task, { active: fingerprint, eligible, fingerprints });
  }
  return result;
}
