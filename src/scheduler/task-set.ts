import { ConfigError } from '../core/errors.js';
import { validateDependencies } from './dependencies.js';
import type { TaskDefinition } from './task.js';

/**
 * Checks what only the whole set of a node's tasks can tell, when the cluster starts: dependencies
 * (declared, same schedule, no cycle) and concurrency groups (one limit per group).
 * @throws ConfigError naming the tasks.
 */
export function validateTaskSet(definitions: ReadonlyMap<string, TaskDefinition>): void {
  validateDependencies(definitions);
  for (const def of definitions.values()) {
    const multi = (d: TaskDefinition) => d.mode.kind === 'sharded' || d.mode.kind === 'broadcast';
    for (const dep of def.policy.dependsOn) {
      const target = definitions.get(dep) as TaskDefinition;
      if (multi(def) || multi(target)) {
        const which = multi(def) ? def : target;
        throw new ConfigError(`task "${def.name}": dependsOn: task "${which.name}" is ${which.mode.kind}; dependencies work between tasks with one run per tick`);
      }
    }
  }
  const groups = new Map<string, TaskDefinition>();
  for (const def of definitions.values()) {
    const concurrency = def.policy.concurrency;
    if (!concurrency) continue;
    const first = groups.get(concurrency.group);
    if (first && first.policy.concurrency?.limit !== concurrency.limit) {
      throw new ConfigError(
        `task "${def.name}": concurrency ${concurrency.limit} differs from task "${first.name}" (${first.policy.concurrency?.limit}) in concurrencyGroup "${concurrency.group}"`,
      );
    }
    groups.set(concurrency.group, first ?? def);
  }
}
