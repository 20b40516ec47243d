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

function versionsOf(sessions: readonly SessionRecord[]): Map<string, TaskVersions> {
  const byTask = new Map<string, { oldest: SessionRecord; fingerprint: string; nodes: Map<string, string> }>();
  for (const s of sessions) {
    for (const [task, declaration] of Object.entries(s.info.tasks)) {
      const fingerprint = declaration.fingerprint ?? '';
      const entry = byTask.get(task);
      if (!entry) {
        byTask.set(task, { oldest: s, fingerprint, nodes: new Map([[s.info.id, fingerprint]]) });
        continue;
      }
      entry.nodes.set(s.info.id, fingerprint);
      if (s.ageMs > entry.oldest.ageMs || (s.ageMs === entry.oldest.ageMs && s.info.id < entry.oldest.info.id)) {
        entry.oldest = s;
        entry.fingerprint = fingerprint;
      }
    }
  }
  const result = new Map<string, TaskVersions>();
  for (const [task, { fingerprint, nodes }] of byTask) {
    const eligible = new Set([...nodes].filter(([, f]) => f === fingerprint).map(([id]) => id));
    result.set(task, { active: fingerprint, eligible, fingerprints: [...new Set(nodes.values())].sort() });
  }
  return result;
}
