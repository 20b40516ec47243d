/**
 * What every node derives from the same membership: which version of each task runs (versions.ts) and
 * the preferred owner of each balanced unit (placement.ts). Pure functions of the sessions, so the
 * result is kept per membership key: nodes of one process (tests, benchmarks, a service running several
 * clusters) compute it once, and a node only when membership or declarations change. With 100 nodes ×
 * 10,000 tasks one computation visits 1 M (node, task) pairs.
 */
import type { SessionRecord } from '../stores/contract.js';
import { declaredUnitNames } from './modes.js';
import { asTaskName } from './names.js';
import { assignTasks } from './placement.js';
import { taskVersions, type TaskVersions } from './versions.js';

export interface MembershipPlan {
  readonly versions: ReadonlyMap<string, TaskVersions>;
  /** Preferred owner (node id) of each unit of a balanced mode. */
  readonly balanced: ReadonlyMap<string, string>;
}

/** Modes whose units are spread evenly over the declaring nodes (older nodes declare no mode: singleton). */
const BALANCED_MODES: ReadonlySet<string | undefined> = new Set(['singleton', 'sharded', 'dispatch', undefined]);

/** The last few plans, by membership key (a process rarely follows more than one or two clusters). */
const plans = new Map<string, MembershipPlan>();
const PLANS_KEPT = 4;

/** @param key changes whenever the sessions' ids, labels or declarations change (OwnershipView.membershipKey). */
export function membershipPlan(key: string, sessions: readonly SessionRecord[]): MembershipPlan {
  const known = plans.get(key);
  if (known) return known;
  const versions = taskVersions(sessions);
  // The nodes that may own a balanced unit are those declaring its task's running version: one list per
  // distinct eligible set (most tasks share one), built once.
  const lists = new Map<ReadonlySet<string>, string[]>();
  const candidates = new Map<string, string[]>();
  const seen = new Set<object>();
  for (const s of sessions) {
    if (seen.has(s.info.tasks)) continue;
    seen.add(s.info.tasks);
    for (const [task, declaration] of Object.entries(s.info.tasks)) {
      const version = versions.get(task);
      if (!BALANCED_MODES.has(declaration.mode) || !version || version.active !== (declaration.fingerprint ?? '')) continue;
      let list = lists.get(version.eligible);
      if (!list) lists.set(version.eligible, (list = [...version.eligible]));
      // Balanced units do not depend on the node (only broadcast units do, and they are not balanced).
      for (const unit of declaredUnitNames(asTaskName(task), declaration.mode, declaration.shards, '')) candidates.set(unit, list);
    }
  }
  const plan = { versions, balanced: assignTasks(candidates) };
  plans.set(key, plan);
  if (plans.size > PLANS_KEPT) plans.delete(plans.keys().next().value as string);
  return plan;
}

/** Units by preferred node, per balanced assignment: built once per plan, shared by the nodes of the process. */
const byNode = new WeakMap<ReadonlyMap<string, string>, ReadonlyMap<string, readonly string[]>>();

/** The units `balanced` prefers `node` for (about T/N of them). */
export function unitsPreferredFor(balanced: ReadonlyMap<string, string>, node: string): readonly string[] {
  let index = byNode.get(balanced);
  if (!index) {
    const built = new Map<string, string[]>();
    for (const [unit, owner] of balanced) {
      const list = built.get(owner);
      if (list) list.push(unit);
      else built.set(owner, [unit]);
    }
    index = built;
    byNode.set(balanced, index);
  }
  return index.get(node) ?? [];
}
