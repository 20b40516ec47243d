/** The reload diff: which tasks keep their lease, which swap their command in place, which are redeclared. */
import { describe, expect, it } from 'vitest';
import { parseYamlText } from '../../src/core/config-file.js';
import { parseAgentConfig, type AgentConfig } from '../../src/agent/config.js';
import { diffConfig, removalOrder } from '../../src/agent/reload.js';

const config = async (tasks: string, top = 'store: "memory:"'): Promise<AgentConfig> =>
  parseAgentConfig(await parseYamlText(`${top}\ntasks:\n${tasks}`, 'baton.yaml'), 'baton.yaml');

describe('reload diff', () => {
  it('sorts tasks into unchanged, updated (command only), redeclared (schedule/options), added, removed', async () => {
    const before = await config(`
  same: { every: 1s, command: "true" }
  cmd: { every: 1s, command: "echo a" }
  envchange: { every: 1s, command: "true", env: { A: "1" } }
  sched: { every: 1s, command: "true" }
  opts: { every: 1s, command: "true" }
  gone: { every: 1s, command: "true" }
`);
    const after = await config(`
  same: { every: 1s, command: "true" }
  cmd: { every: 1s, command: "echo b" }
  envchange: { every: 1s, command: "true", env: { A: "2" } }
  sched: { every: 2s, command: "true" }
  opts: { every: 1s, command: "true", timeout: 5s }
  new: { every: 1s, command: "true" }
`);
    const diff = diffConfig(before, after);
    expect(diff.unchanged).toEqual(['same']);
    expect([...diff.updated].sort()).toEqual(['cmd', 'envchange']);
    expect([...diff.redeclared].sort()).toEqual(['opts', 'sched']);
    expect(diff.added).toEqual(['new']);
    expect(diff.removed).toEqual(['gone']);
    expect(diff.restartNeeded).toEqual([]);
  });

  it('redeclares a kept task whose dependency is redeclared, and removes dependents first', async () => {
    const before = await config(`
  a: { every: 1s, command: "true" }
  b: { every: 1s, command: "true", dependsOn: a }
  c: { every: 1s, command: "true", dependsOn: b }
`);
    const after = await config(`
  a: { every: 1s, command: "true", timeout: 1s }
  b: { every: 1s, command: "true", dependsOn: a }
  c: { every: 1s, command: "true", dependsOn: b }
`);
    const diff = diffConfig(before, after);
    expect([...diff.redeclared].sort()).toEqual(['a', 'b', 'c']);
    expect(removalOrder(diff.redeclared, before.tasks)).toEqual(['c', 'b', 'a']);
  });

  it('lists top-level changes that need a restart', async () => {
    const before = await config('  a: { every: 1s, command: "true" }\n', 'store: "memory:"\ncluster: one');
    const after = await config('  a: { every: 1s, command: "true" }\n', 'store: "sqlite:x.db"\ncluster: two\nttl: 3s');
    expect(diffConfig(before, after).restartNeeded).toEqual(['store', 'cluster', 'ttl']);
    expect(diffConfig(before, after).unchanged).toEqual(['a']);
  });
});
