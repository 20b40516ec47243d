/**
 * The status as changes: what an event stream sends after its first full snapshot, so a viewer of 1,000
 * tasks gets the few rows that changed, not the whole snapshot on every poll.
 */
import type { MonitorStatus } from './monitor-events.js';
import type { NodeStatus, TaskStatus } from './status.js';

/**
 * What changed since the previous delta (or the stream's first `status`): `at` always; a task in `tasks`
 * replaces the row of its unit; `removed` units are gone; a list (`nodes`, `alerts`, …) present replaces
 * the whole list (they are short). Applying every delta to the first snapshot gives the monitor's status
 * at `at`, except the nodes' clocks (`sessionAgeMs`, `expiresInMs`, `lastRenewalAt`), which are as of the
 * last list or `nodeClocks` sent: those are sent (without the rest of the node, whose `owns` may name
 * thousands of units) when a renewal moved a session's expiry by a second or more.
 */
export interface StatusDelta {
  readonly at: number;
  readonly tasks?: readonly TaskStatus[];
  readonly removed?: readonly string[];
  readonly nodes?: MonitorStatus['nodes'];
  /** The clocks of every node session, by `sessionId`, when only they moved. */
  readonly nodeClocks?: readonly NodeClocks[];
  readonly monitors?: MonitorStatus['monitors'];
  readonly locks?: MonitorStatus['locks'];
  readonly alerts?: MonitorStatus['alerts'];
  readonly relays?: MonitorStatus['relays'];
}

export type NodeClocks = Pick<NodeStatus, 'sessionId' | 'sessionAgeMs' | 'expiresInMs' | 'lastRenewalAt'>;

type ListField = 'nodes' | 'monitors' | 'locks' | 'alerts' | 'relays';
const LISTS: readonly ListField[] = ['nodes', 'monitors', 'locks', 'alerts', 'relays'];
/** A node's expiry moving less than this (clock noise, a renewal) does not send the node list again. */
const EXPIRY_SLACK_MS = 1000;

/** Computes the deltas of successive snapshots of one monitor (one tracker serves every stream). */
export class StatusDeltas {
  readonly #tasks = new Map<string, string>();
  readonly #lists = new Map<ListField, string>();
  /** Expiry (store time) of each node session as last sent. */
  #expiries = new Map<string, number>();

  /** The delta from the previous call's snapshot to `status`; only `at` when nothing else changed. */
  next(status: MonitorStatus): StatusDelta {
    const tasks: TaskStatus[] = [];
    const seen = new Set<string>();
    for (const task of status.tasks) {
      seen.add(task.unit);
      const shape = shapeOf(task);
      if (this.#tasks.get(task.unit) !== shape) {
        this.#tasks.set(task.unit, shape);
        tasks.push(task);
      }
    }
    const removed = [...this.#tasks.keys()].filter((unit) => !seen.has(unit));
    for (const unit of removed) this.#tasks.delete(unit);
    const delta: { -readonly [K in keyof StatusDelta]: StatusDelta[K] } = { at: status.at };
    if (tasks.length > 0) delta.tasks = tasks;
    if (removed.length > 0) delta.removed = removed;
    for (const field of LISTS) {
      const list = status[field];
      const shape = shapeOf(field === 'nodes' || field === 'monitors' ? (list as readonly NodeStatus[]).map(withoutClocks) : field === 'relays' ? status.relays.map((r) => ({ ...r, at: 0 })) : list);
      if (this.#lists.get(field) !== shape) {
        this.#lists.set(field, shape);
        (delta as Record<string, unknown>)[field] = list;
      }
    }
    if (!delta.nodes && this.#expiryMoved(status)) {
      delta.nodeClocks = status.nodes.map((n) => ({ sessionId: n.sessionId, sessionAgeMs: n.sessionAgeMs, expiresInMs: n.expiresInMs, lastRenewalAt: n.lastRenewalAt }));
    }
    if (delta.nodes || delta.nodeClocks) this.#expiries = new Map(status.nodes.map((n) => [n.sessionId, status.at + n.expiresInMs]));
    return delta;
  }

  #expiryMoved(status: MonitorStatus): boolean {
    return status.nodes.some((n) => Math.abs(status.at + n.expiresInMs - (this.#expiries.get(n.sessionId) ?? -Infinity)) >= EXPIRY_SLACK_MS);
  }
}

/** Whether a delta says more than the time. */
export function hasChanges(delta: StatusDelta): boolean {
  return Object.keys(delta).length > 1;
}

function withoutClocks(node: NodeStatus): NodeStatus {
  return { ...node, sessionAgeMs: 0, expiresInMs: 0, lastRenewalAt: 0 };
}

/** JSON with bigints as strings (fencing tokens), to compare records. */
function shapeOf(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
