/**
 * Owners over time: every owner change the monitor saw, classified (a failover, a handover, …) and with
 * its measured gap, kept in the monitor's memory so a page opened later (or reloaded) still marks them.
 *
 * The gap is measured in store time from the last snapshot that showed the previous owner to the new
 * owner's `since`: it bounds the time the unit had no owner from above, by at most one `pollEvery`.
 */
import type { StatusSnapshot, TaskStatus } from './status.js';

type Owner = NonNullable<TaskStatus['owner']>;

/**
 * - `assigned`: a first owner (none seen before by this monitor);
 * - `failover`: the previous owner's node is gone (crashed or closed) and another node took the unit;
 * - `handover`: the previous owner's node is still alive and another took the unit (a rebalance, a release);
 * - `reacquired`: the same node holds the unit again under a new token;
 * - `lost`: nobody owns the unit now.
 */
export type OwnerChangeKind = 'assigned' | 'failover' | 'handover' | 'reacquired' | 'lost';

/** How an owner change is classified and measured (added to the `owner:changed` event). */
export interface OwnerChangeInfo {
  readonly kind: OwnerChangeKind;
  /** The owner before, even when the unit had no owner in between (`from` is then null). */
  readonly previous?: Owner;
  /** Store ms from the last snapshot showing `previous` to the new owner's `since` (not for `lost`, `assigned`). */
  readonly gapMs?: number;
}

/** An owner change as kept: the event's fields and when the snapshot that showed it was read. */
export interface OwnerChange extends OwnerChangeInfo {
  readonly task: string;
  readonly unit: string;
  readonly at: number;
  readonly from: Owner | null;
  readonly to: Owner | null;
}

export interface OwnerChangeQuery {
  readonly task?: string;
  readonly unit?: string;
  readonly limit: number;
}

/** Changes kept per unit, then overall (a monitor of 1,000 units keeps the last few of each). */
const PER_UNIT = 50;
const OVERALL = 20_000;

export class OwnerLog {
  /** The last owner of each unit and the store time of the last snapshot that showed it. */
  readonly #last = new Map<string, { owner: Owner; seenAt: number }>();
  readonly #byUnit = new Map<string, OwnerChange[]>();
  #count = 0;

  /**
   * Classifies an owner change seen in `next` (call it before {@link observe} of the same snapshot) and
   * keeps it.
   */
  record(change: { task: string; unit: string; from: Owner | null; to: Owner | null }, next: StatusSnapshot): OwnerChange {
    const last = this.#last.get(change.unit);
    const previous = change.from ?? last?.owner;
    let info: OwnerChangeInfo;
    if (change.to === null) info = { kind: 'lost', ...(previous ? { previous } : {}) };
    else if (!previous) info = { kind: 'assigned' };
    else {
      // observe() ran on every earlier snapshot: `last` is the previous owner, unless this monitor never saw it.
      const seenAt = last && last.owner.token === previous.token ? last.seenAt : change.to.since;
      const gapMs = Math.max(0, change.to.since - seenAt);
      const alive = next.nodes.some((n) => n.id === previous.node && n.pid === previous.pid && n.host === previous.host);
      const kind: OwnerChangeKind = previous.node === change.to.node && previous.pid === change.to.pid ? 'reacquired' : alive ? 'handover' : 'failover';
      info = { kind, previous, gapMs };
    }
    const kept: OwnerChange = { ...change, at: next.at, ...info };
    const list = this.#byUnit.get(change.unit) ?? [];
    list.push(kept);
    this.#count++;
    if (list.length > PER_UNIT) {
      list.shift();
      this.#count--;
    }
    this.#byUnit.set(change.unit, list);
    if (this.#count > OVERALL) this.#dropOldest();
    return kept;
  }

  /** Remembers who owns what in this snapshot, and when it was seen. */
  observe(status: StatusSnapshot): void {
    for (const t of status.tasks) if (t.owner) this.#last.set(t.unit, { owner: t.owner, seenAt: status.at });
  }

  /** Newest first. */
  changes(query: OwnerChangeQuery): OwnerChange[] {
    const lists = query.unit !== undefined ? [this.#byUnit.get(query.unit) ?? []] : [...this.#byUnit.values()];
    const all = lists.flat().filter((c) => query.task === undefined || c.task === query.task);
    return all.sort((a, b) => b.at - a.at).slice(0, query.limit);
  }

  #dropOldest(): void {
    let oldest: OwnerChange[] | undefined;
    for (const list of this.#byUnit.values()) if (list.length > 0 && (!oldest || (list[0] as OwnerChange).at < (oldest[0] as OwnerChange).at)) oldest = list;
    if (oldest) {
      oldest.shift();
      this.#count--;
    }
  }
}
