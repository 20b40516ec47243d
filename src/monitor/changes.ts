/**
 * What changed between two snapshots: the events a monitor reports. A pure function of the two reads, so
 * every monitor derives the same events from the store, whichever process it runs in.
 */
import { runEndEvent } from '../scheduler/events.js';
import type { ActionRecord } from '../scheduler/controls.js';
import type { UnitName } from '../scheduler/names.js';
import type { RunRecord } from '../scheduler/task.js';
import type { Alert, MonitorEvent } from './monitor-events.js';
import type { RelayView } from './relay-watch.js';
import type { StatusSnapshot } from './status.js';

/** A snapshot as the monitor keeps it: the status, the newest runs of each unit, the active alerts. */
export interface Observation {
  readonly status: StatusSnapshot;
  readonly recentRuns: ReadonlyMap<UnitName, readonly RunRecord[]>;
  readonly alerts: readonly Alert[];
  /** The watched relays as last inspected (monitor option `relays`); empty when none. */
  readonly relays?: readonly RelayView[];
  /** The newest controls recorded (`action/`), newest first. */
  readonly actions?: readonly ActionRecord[];
}

/** Events between `prev` and `next`, oldest first; none for the first observation (that is history). */
export function changesBetween(prev: Observation | undefined, next: Observation): MonitorEvent[] {
  if (!prev) return [];
  return [...nodeChanges(prev, next), ...ownerChanges(prev, next), ...runChanges(prev, next), ...alertChanges(prev, next), ...actionChanges(prev, next)];
}

function nodeChanges(prev: Observation, next: Observation): MonitorEvent[] {
  const before = new Map(prev.status.nodes.map((n) => [n.sessionId, n]));
  const after = new Map(next.status.nodes.map((n) => [n.sessionId, n]));
  const events: MonitorEvent[] = [];
  for (const [id, node] of before) if (!after.has(id)) events.push({ type: 'node:left', node });
  for (const [id, node] of after) if (!before.has(id)) events.push({ type: 'node:joined', node });
  return events;
}

function ownerChanges(prev: Observation, next: Observation): MonitorEvent[] {
  const before = new Map(prev.status.tasks.map((t) => [t.unit, t.owner]));
  const events: MonitorEvent[] = [];
  for (const { task, unit, owner: to } of next.status.tasks) {
    const from = before.get(unit) ?? null;
    if ((from?.token ?? null) !== (to?.token ?? null)) events.push({ type: 'owner:changed', task, unit, from, to });
  }
  return events;
}

/** A run's identity among its unit's records: the tick, and the trigger id for a triggered run. */
const runId = (run: RunRecord): string => `${run.tick}:${run.triggerId ?? ''}`;

function runChanges(prev: Observation, next: Observation): MonitorEvent[] {
  const events: MonitorEvent[] = [];
  for (const [unit, runs] of next.recentRuns) {
    const known = prev.recentRuns.has(unit);
    const earlier = prev.recentRuns.get(unit) ?? [];
    const seen = new Map(earlier.map((r) => [runId(r), r]));
    // Records older than the oldest one read last time were outside that window, not new.
    const oldest = earlier.length > 0 ? Math.min(...earlier.map((r) => r.tick)) : -Infinity;
    for (const run of [...runs].reverse()) {
      // A pause grows one `missed` record per tick: the paused flag of the task says it once.
      if (run.status === 'missed' && run.missed?.reason === 'paused') continue;
      const before = seen.get(runId(run));
      if (before === undefined) {
        // Older than the window read last time: not new. A unit seen for the first time (a node's
        // broadcast share returning) brings its history along: only what started since the last read is new.
        if (run.tick < oldest || (!known && (run.startedAt ?? run.tick) < prev.status.at)) continue;
        events.push(runEvent(run));
      } else if (before.status !== run.status) {
        events.push(runEvent(run));
      }
    }
  }
  return events;
}

/** The run event a record stands for, named as the scheduler names it (scheduler/events.ts). */
function runEvent(run: RunRecord): MonitorEvent {
  const ref = { task: run.task, unit: run.unit };
  switch (run.status) {
    case 'running':
      return { type: 'run:started', ...ref, run };
    case 'missed':
      return { type: 'tick:missed', ...ref, run };
    default:
      return { type: runEndEvent(run.status), ...ref, run };
  }
}

function alertChanges(prev: Observation, next: Observation): MonitorEvent[] {
  const before = new Map(prev.alerts.map((a) => [a.id, a]));
  const after = new Set(next.alerts.map((a) => a.id));
  const events: MonitorEvent[] = [];
  for (const alert of next.alerts) if (!before.has(alert.id)) events.push({ type: 'alert:raised', alert });
  for (const [id, alert] of before) {
    if (!after.has(id)) events.push({ type: 'alert:resolved', alert: { ...alert, resolvedAt: next.status.at } });
  }
  return events;
}

/**
 * Controls recorded since the last read, oldest first. By id, not by "newer than the newest seen": two
 * controls of one millisecond, or one from a process whose clock lags, sort in any order.
 */
function actionChanges(prev: Observation, next: Observation): MonitorEvent[] {
  const seen = new Set((prev.actions ?? []).map((a) => a.id));
  return (next.actions ?? [])
    .filter((action) => !seen.has(action.id))
    .reverse()
    .map((action) => ({ type: 'task:action', task: action.task, action }));
}
