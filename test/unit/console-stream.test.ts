/**
 * What the monitor sends a dashboard after its first snapshot and keeps for it: status deltas (only the
 * rows that changed, node clocks excepted; applied to the first snapshot they give the latest status) and
 * owners over time (each change classified, with its gap measured from the last snapshot that showed the
 * previous owner).
 */
import { describe, expect, it } from 'vitest';
import type { MonitorStatus } from '../../src/monitor/monitor-events.js';
import { OwnerLog } from '../../src/monitor/owner-log.js';
import type { NodeStatus, TaskStatus } from '../../src/monitor/status.js';
import { hasChanges, StatusDeltas, type StatusDelta } from '../../src/monitor/status-delta.js';
import type { TaskName, UnitName } from '../../src/scheduler/names.js';

const node = (id: string, pid: number, at: number, expiresInMs = 3000): NodeStatus => ({
  id, host: 'h', pid, version: '0', labels: {}, startedAt: 0, sessionId: `s-${id}`, sessionAgeMs: at, expiresInMs, lastRenewalAt: at + expiresInMs - 3000, owns: [],
});
const owner = (n: NodeStatus, token: string, since: number) => ({ node: n.id, host: n.host, pid: n.pid, token, since });
const task = (unit: string, patch: Partial<TaskStatus> = {}): TaskStatus => ({
  unit: unit as UnitName, task: unit as TaskName, mode: 'preferred', schedules: ['every 1s'], conflict: false, owner: null, lastRun: null, nextTick: 1000, declaredBy: 1, paused: false, ...patch,
});
const status = (at: number, tasks: TaskStatus[], nodes: NodeStatus[]): MonitorStatus => ({ cluster: 'c', store: 'memory', at, nodes, tasks, locks: [], monitors: [], alerts: [], relays: [] });

/** The page's fold: rows replaced by unit, removed units dropped, lists replaced. */
function apply(base: MonitorStatus, delta: StatusDelta): MonitorStatus {
  const rows = new Map(base.tasks.map((t) => [t.unit, t]));
  for (const t of delta.tasks ?? []) rows.set(t.unit, t);
  for (const u of delta.removed ?? []) rows.delete(u as UnitName);
  return { ...base, at: delta.at, tasks: [...rows.values()], nodes: delta.nodes ?? base.nodes, alerts: delta.alerts ?? base.alerts };
}

describe('status deltas', () => {
  it('carry only the changed rows, and folded into the first snapshot give the latest', () => {
    const a = node('a', 1, 0);
    const tasks = Array.from({ length: 1000 }, (_, i) => task(`t-${i}`, { owner: owner(a, '1', 0) }));
    const deltas = new StatusDeltas();
    const first = status(0, tasks, [a]);
    expect(deltas.next(first).tasks).toHaveLength(1000);

    // Clocks only: the node's age grew and its session was renewed (expiry moved under a second).
    const quiet = deltas.next(status(500, tasks, [node('a', 1, 500, 2800)]));
    expect(hasChanges(quiet)).toBe(false);

    const changed = tasks.map((t, i) => (i === 7 ? { ...t, nextTick: 2000 } : t)).filter((t) => t.unit !== 't-9');
    changed.push(task('t-new'));
    const next = status(1000, changed, [node('a', 1, 1000, 2500)]);
    const delta = deltas.next(next);
    expect(delta.tasks?.map((t) => t.unit)).toEqual(['t-7', 't-new']);
    expect(delta.removed).toEqual(['t-9']);
    expect(delta.nodes).toBeUndefined();
    const folded = apply(apply(first, quiet), delta);
    expect(new Map(folded.tasks.map((t) => [t.unit, t]))).toEqual(new Map(next.tasks.map((t) => [t.unit, t])));
    // A renewal that moves the expiry by a second or more sends the nodes' clocks (the page counts down from
    // them), not the nodes (whose `owns` may list thousands of units).
    const renewed = deltas.next(status(1500, changed, [node('a', 1, 1500, 3000)]));
    expect(renewed.nodes).toBeUndefined();
    expect(renewed.nodeClocks).toEqual([{ sessionId: 's-a', sessionAgeMs: 1500, expiresInMs: 3000, lastRenewalAt: 1500 }]);
    // A new node: the list again.
    expect(deltas.next(status(1600, changed, [node('a', 1, 1600, 2900), node('b', 2, 1600)])).nodes).toHaveLength(2);
  });
});

describe('owners over time', () => {
  it('classifies failovers, handovers and a lost owner, and measures the gap from the last snapshot showing the previous owner', () => {
    const log = new OwnerLog();
    const a = node('a', 1, 0);
    const b = node('b', 2, 0);
    const ownedBy = (n: NodeStatus | null, token: string, since: number) => ({ task: 'r', unit: 'r', from: null, to: n ? owner(n, token, since) : null });

    // First owner.
    const s1 = status(1000, [task('r', { owner: owner(a, '1', 900) })], [a, b]);
    expect(log.record(ownedBy(a, '1', 900), s1).kind).toBe('assigned');
    log.observe(s1);
    log.observe(status(2000, [task('r', { owner: owner(a, '1', 900) })], [a, b]));

    // a dies: first nobody (lost), then b takes the unit at 2600 — 600 ms after the last snapshot showing a.
    const s3 = status(2500, [task('r')], [b]);
    expect(log.record({ task: 'r', unit: 'r', from: owner(a, '1', 900), to: null }, s3).kind).toBe('lost');
    log.observe(s3);
    const s4 = status(3000, [task('r', { owner: owner(b, '2', 2600) })], [b]);
    const failover = log.record(ownedBy(b, '2', 2600), s4);
    expect(failover).toMatchObject({ kind: 'failover', gapMs: 600, previous: { node: 'a' } });
    log.observe(s4);

    // A live node taking over is a handover; the same node under a new token, reacquired.
    const a2 = node('a', 3, 3000);
    const s5 = status(4000, [task('r', { owner: owner(a2, '3', 3900) })], [a2, b]);
    expect(log.record({ task: 'r', unit: 'r', from: owner(b, '2', 2600), to: owner(a2, '3', 3900) }, s5)).toMatchObject({ kind: 'handover', gapMs: 900 });
    log.observe(s5);
    const s6 = status(5000, [task('r', { owner: owner(a2, '4', 4800) })], [a2, b]);
    expect(log.record({ task: 'r', unit: 'r', from: owner(a2, '3', 3900), to: owner(a2, '4', 4800) }, s6)).toMatchObject({ kind: 'reacquired', gapMs: 800 });

    // Kept newest first, by task or unit.
    expect(log.changes({ task: 'r', limit: 10 }).map((c) => c.kind)).toEqual(['reacquired', 'handover', 'failover', 'lost', 'assigned']);
    expect(log.changes({ unit: 'other', limit: 10 })).toEqual([]);
    expect(log.changes({ limit: 2 })).toHaveLength(2);
  });
});
