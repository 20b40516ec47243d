/**
 * Dependencies between tasks: with `dependsOn: 'A'`, task B's run for tick T starts only once A's run
 * record for the same tick T says `succeeded`. Ticks match by their scheduled time, so A and B must have
 * the same schedule (checked when the cluster starts, with every other rule below).
 *
 * Guarantees: B never starts tick T before A's record for T is `succeeded` in the store. B's tick is
 * recorded missed (reason `dependency`) as soon as A's tick T ended otherwise (failed, timed out, aborted,
 * missed, or skipped past by A's owner), or when `dependencyTimeout` passes first.
 * Non-guarantees: B's run does not keep A from running again; manual triggers of B do not wait for A.
 */
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { Store } from '../stores/contract.js';
import { HintWaker, recordsMatching } from './hints.js';
import { runKey, runPrefix } from './keys.js';
import { soleUnit, type TaskName } from './names.js';
import type { RunRecord, TaskDefinition } from './task.js';

/** Poll period of a dependency wait when no hint arrives. */
const DEPENDENCY_POLL_MS = 1000;
/** Default wait of a task with a single tick (`at`): it has no next tick to bound it. */
export const SINGLE_TICK_DEPENDENCY_TIMEOUT_MS = 10 * 60_000;

/**
 * Checks the dependency graph of the tasks a node declares: every dependency is declared, has the same
 * schedule, and there is no cycle. @throws ConfigError naming the tasks.
 */
export function validateDependencies(definitions: ReadonlyMap<string, TaskDefinition>): void {
  for (const def of definitions.values()) {
    for (const dep of def.policy.dependsOn) {
      const target = definitions.get(dep);
      if (!target) {
        throw new ConfigError(`task "${def.name}": dependsOn: task "${dep}" is not declared on this node (declared: ${[...definitions.keys()].join(', ')})`);
      }
      if (target.schedule.description !== def.schedule.description) {
        throw new ConfigError(
          `task "${def.name}": dependsOn: task "${dep}" has another schedule (${target.schedule.description} vs ${def.schedule.description}); ticks match only between equal schedules`,
        );
      }
    }
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new ConfigError(`task "${name}": dependsOn forms a cycle: ${cycle.map((t) => `"${t}"`).join(' → ')}`);
    }
    state.set(name, 'visiting');
    for (const dep of definitions.get(name)?.policy.dependsOn ?? []) visit(dep, [...path, name]);
    state.set(name, 'done');
  };
  for (const name of [...definitions.keys()].sort()) visit(name, []);
}

export type DependencyOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Waits until every dependency's record for `tick` is `succeeded`, one fails, or `timeoutMs` passes. */
export async function awaitDependencies(options: {
  readonly store: Store;
  readonly clock: Clock;
  readonly dependsOn: readonly TaskName[];
  readonly tick: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly onWait: () => void;
}): Promise<DependencyOutcome> {
  const { store, clock, dependsOn, tick, signal } = options;
  const deadline = clock.monotonic() + options.timeoutMs;
  const waker = new HintWaker(store, clock, recordsMatching(...dependsOn.map((dep) => runPrefix(soleUnit(dep)))), 250);
  const pending = new Set(dependsOn);
  let waited = false;
  try {
    for (;;) {
      for (const dep of [...pending]) {
        const state = await dependencyState(store, dep, tick);
        if (state === 'succeeded') pending.delete(dep);
        else if (state !== 'pending') return { ok: false, reason: `task "${dep}" ${state} for tick ${new Date(tick).toISOString()}` };
      }
      if (pending.size === 0) return { ok: true };
      const left = deadline - clock.monotonic();
      if (left <= 0) {
        return { ok: false, reason: `task(s) ${[...pending].map((d) => `"${d}"`).join(', ')} did not succeed for tick ${new Date(tick).toISOString()} within ${options.timeoutMs}ms` };
      }
      if (!waited) options.onWait();
      waited = true;
      await waker.wait(Math.min(left, DEPENDENCY_POLL_MS), signal);
    }
  } finally {
    waker.close();
  }
}

/** `succeeded`, `pending` (not yet, or running), or how the dependency's tick ended otherwise. */
/** A dependency has one unit (task-set.ts refuses sharded and broadcast ones): the task itself. */
async function dependencyState(store: Store, dep: TaskName, tick: number): Promise<string> {
  const record = (await store.get<RunRecord>(runKey(soleUnit(dep), tick)))?.value;
  if (record) {
    if (record.status === 'succeeded') return 'succeeded';
    if (record.status === 'running') return 'pending';
    return record.status === 'missed' ? `missed the tick (${record.missed?.reason ?? 'unknown'})` : record.status;
  }
  // No record for the tick: pending, unless the dependency's owner has already moved past it (its ticks
  // are handled in order, so it will never come back to this one).
  const newest = await store.list<RunRecord>(runPrefix(soleUnit(dep)), { reverse: true, limit: 5 });
  const newestTick = newest.find((r) => r.value.trigger !== true)?.value.tick;
  return newestTick !== undefined && newestTick > tick ? 'skipped the tick' : 'pending';
}
