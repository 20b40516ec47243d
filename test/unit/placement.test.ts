/**
 * Placement (rendezvous hashing with bounded load): every node computes the same preferred owner of each
 * task from the same membership; load is balanced; a join or leave moves about T/N tasks, not all.
 */
import { describe, expect, it } from 'vitest';
import { assignTasks, score } from '../../src/scheduler/placement.js';

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const everyone = (tasks: string[], nodes: string[]) => new Map(tasks.map((t) => [t, nodes]));

function loads(assignment: Map<string, string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of assignment.values()) counts.set(node, (counts.get(node) ?? 0) + 1);
  return counts;
}

function moved(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...before.keys()].filter((t) => before.get(t) !== after.get(t));
}

describe('assignTasks', () => {
  it('balances 300 tasks over 3 nodes exactly (max − min ≤ 1)', () => {
    const tasks = names('task', 300);
    const assignment = assignTasks(everyone(tasks, ['n1', 'n2', 'n3']));
    expect(assignment.size).toBe(300);
    const counts = [...loads(assignment).values()];
    expect(counts).toHaveLength(3);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(300);
  });

  it('gives every node ⌊T/N⌋ or ⌈T/N⌉ tasks whatever T and N', () => {
    for (const [taskCount, nodeCount] of [
      [1, 3],
      [2, 3],
      [20, 3],
      [31, 3],
      [50, 6],
      [100, 7],
      [1000, 4],
      [1000, 7],
      [5, 5],
    ] as const) {
      const assignment = assignTasks(everyone(names('t', taskCount), names('node', nodeCount)));
      const counts = names('node', nodeCount).map((n) => loads(assignment).get(n) ?? 0);
      for (const c of counts) {
        expect(c, `${taskCount} tasks over ${nodeCount} nodes: ${counts.join('/')}`).toBeGreaterThanOrEqual(Math.floor(taskCount / nodeCount));
        expect(c, `${taskCount} tasks over ${nodeCount} nodes: ${counts.join('/')}`).toBeLessThanOrEqual(Math.ceil(taskCount / nodeCount));
      }
      expect(assignment.size).toBe(taskCount);
    }
  });

  it('is deterministic: the same answer whatever the order of tasks and nodes', () => {
    const tasks = names('task', 120);
    const a = assignTasks(everyone(tasks, ['n1', 'n2', 'n3']));
    const b = assignTasks(new Map([...tasks].reverse().map((t) => [t, ['n3', 'n1', 'n2']])));
    expect([...b.entries()].sort()).toEqual([...a.entries()].sort());
    expect(assignTasks(everyone(tasks, ['n1', 'n2', 'n3']))).toEqual(a);
    expect(score('task-1', 'n1')).toBe(score('task-1', 'n1'));
    expect(score('task-1', 'n1')).not.toBe(score('task-1', 'n2'));
  });

  it('moves about T/N tasks when a node joins, almost all of them to the newcomer', () => {
    const tasks = names('task', 300);
    const before = assignTasks(everyone(tasks, ['n1', 'n2', 'n3']));
    const after = assignTasks(everyone(tasks, ['n1', 'n2', 'n3', 'n4']));
    const changed = moved(before, after);
    // Ideal is 300/4 = 75; moving everything would be ~225.
    expect(changed.length).toBeGreaterThanOrEqual(75);
    expect(changed.length).toBeLessThanOrEqual(95);
    const toNewcomer = changed.filter((t) => after.get(t) === 'n4');
    expect(toNewcomer.length).toBeGreaterThanOrEqual(70);
    expect([...loads(after).values()]).toEqual([75, 75, 75, 75]);
  });

  it('moves only about T/N tasks when a node leaves: the leaver’s and a few more', () => {
    const tasks = names('task', 300);
    const before = assignTasks(everyone(tasks, ['n1', 'n2', 'n3']));
    const after = assignTasks(everyone(tasks, ['n1', 'n3']));
    const changed = moved(before, after);
    const leaverHad = [...before.values()].filter((n) => n === 'n2').length;
    expect(changed.length).toBeGreaterThanOrEqual(leaverHad);
    expect(changed.length).toBeLessThanOrEqual(leaverHad * 1.2);
    expect([...after.values()]).not.toContain('n2');
  });

  it('respects heterogeneous declarations: a task goes only to a node that declares it', () => {
    const shared = names('shared', 30);
    const onlyA = names('only-a', 10);
    const bc = names('bc', 12);
    const candidates = new Map<string, string[]>([
      ...shared.map((t) => [t, ['a', 'b', 'c']] as [string, string[]]),
      ...onlyA.map((t) => [t, ['a']] as [string, string[]]),
      ...bc.map((t) => [t, ['b', 'c']] as [string, string[]]),
      ['nobody', []],
    ]);
    const assignment = assignTasks(candidates);
    for (const [task, nodes] of candidates) {
      if (nodes.length === 0) expect(assignment.has(task)).toBe(false);
      else expect(nodes).toContain(assignment.get(task));
    }
    for (const t of onlyA) expect(assignment.get(t)).toBe('a');
    // The shared tasks still even out the load around the ones only some nodes can take.
    const counts = loads(assignment);
    const total = 30 + 10 + 12;
    for (const node of ['a', 'b', 'c']) expect(counts.get(node)).toBeLessThanOrEqual(Math.ceil(total / 3) + 1);
  });

  it('gives nothing to a node that declares nothing and handles an empty fleet', () => {
    expect(assignTasks(new Map()).size).toBe(0);
    const assignment = assignTasks(everyone(names('t', 10), ['a']));
    expect(new Set(assignment.values())).toEqual(new Set(['a']));
  });
});
