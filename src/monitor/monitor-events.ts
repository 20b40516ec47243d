/**
 * What a monitor tells its watchers: changes it saw in the store between two snapshots (a node joined,
 * an owner changed, a run started / finished / failed / was missed) and alerts raised or resolved.
 * Derived from the store alone, so a standalone monitor (`baton serve`) sees what an embedded one sees.
 */
import type { ActionRecord } from '../scheduler/controls.js';
import type { UnitRef } from '../scheduler/events.js';
import type { TaskName } from '../scheduler/names.js';
import type { RunRecord } from '../scheduler/task.js';
import type { OwnerChangeInfo } from './owner-log.js';
import type { RelayView } from './relay-watch.js';
import type { NodeStatus, StatusSnapshot, TaskStatus } from './status.js';

export type AlertRule =
  | 'no-owner'
  | 'missed-ticks'
  | 'consecutive-failures'
  | 'long-run'
  | 'node-flapping'
  | 'relay-backlog'
  | 'relay-dead-letters'
  | 'relay-unreachable';

/**
 * One alert: a rule firing for one subject — a task unit; a node id for `node-flapping`; `relay/node` for
 * `relay-backlog` and `relay-unreachable` (`relay` alone when its broker cannot be read); `relay` for
 * `relay-dead-letters`.
 */
export interface Alert {
  /** `rule:subject`: stable while the condition lasts, so raised and resolved pair up. */
  readonly id: string;
  readonly rule: AlertRule;
  readonly subject: string;
  /** What is wrong, for a human. */
  readonly message: string;
  /** Store time the condition was first seen, ms since the epoch. */
  readonly since: number;
  /** Store time it was resolved (only on `alert:resolved`). */
  readonly resolvedAt?: number;
}

type Owner = NonNullable<TaskStatus['owner']>;

export type MonitorEvent =
  | { readonly type: 'node:joined'; readonly node: NodeStatus }
  | { readonly type: 'node:left'; readonly node: NodeStatus }
  /** `kind`, `previous` and `gapMs` (owner-log.ts) are added by the monitor that saw the change. */
  | (UnitRef & { readonly type: 'owner:changed'; readonly from: Owner | null; readonly to: Owner | null } & Partial<OwnerChangeInfo>)
  | (UnitRef & { readonly type: 'run:started'; readonly run: RunRecord })
  /** A run that succeeded (the scheduler's event of the same name). */
  | (UnitRef & { readonly type: 'run:succeeded'; readonly run: RunRecord })
  /** A run that failed, timed out or was aborted (`run.status` says which; the scheduler's event of the same name). */
  | (UnitRef & { readonly type: 'run:failed'; readonly run: RunRecord })
  /** Ticks recorded missed (`run.missed` says which and why; the scheduler's `tick:missed`). */
  | (UnitRef & { readonly type: 'tick:missed'; readonly run: RunRecord })
  /** A trigger, pause or resume, with who asked (token label, `cli`, `node`), from where and when (controls.ts). */
  | { readonly type: 'task:action'; readonly task: TaskName; readonly action: ActionRecord }
  | { readonly type: 'alert:raised'; readonly alert: Alert }
  | { readonly type: 'alert:resolved'; readonly alert: Alert };

export type MonitorEventType = MonitorEvent['type'];

/** An event as delivered: numbered (the SSE id) and stamped with the store time of the snapshot that showed it. */
export type StampedEvent = MonitorEvent & { readonly seq: number; readonly at: number };

/** The snapshot a monitor serves: the store's status plus the alerts active now and the watched relays. */
export interface MonitorStatus extends StatusSnapshot {
  readonly alerts: readonly Alert[];
  readonly relays: readonly RelayView[];
}
